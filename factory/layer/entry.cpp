#include "factory/layer/entry.hpp"

#include <algorithm>
#include <set>

namespace factory::layer {

namespace {

const char* type_name(Entry::Type type) {
    switch (type) {
    case Entry::Type::file:
        return "file";
    case Entry::Type::dir:
        return "directory";
    case Entry::Type::symlink:
        return "symlink";
    case Entry::Type::hardlink:
        return "hardlink";
    }
    return "entry";
}

// The next component of `rest`, which is consumed up to and including the next '/'.
std::string_view next_component(std::string_view& rest) {
    auto slash = rest.find('/');
    auto component = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    return component;
}

Result<void> check_xattrs(const Entry& entry) {
    std::set<std::string_view> names;
    for (const auto& [name, value] : entry.xattrs) {
        // PAX keywords are "SCHILY.xattr.NAME": '=' ends a keyword, NUL can't be in one.
        if (name.empty() || name.find_first_of(std::string_view("=\0", 2)) != std::string::npos)
            return Unexpected("invalid xattr name \"" + name + "\" on " + entry.path);
        if (!names.insert(name).second)
            return Unexpected("duplicate xattr " + name + " on " + entry.path);
    }
    return {};
}

Result<void> check_content(const Entry& entry) {
    bool has_content = !entry.source.empty() || !entry.data.empty() || entry.size != 0;
    if (entry.type != Entry::Type::file && has_content)
        return Unexpected(std::string(type_name(entry.type)) + " " + entry.path + " has content");
    if (entry.type == Entry::Type::file && entry.source.empty() && entry.size != 0 &&
        entry.size != entry.data.size())
        return Unexpected("file " + entry.path + ": size " + std::to_string(entry.size) +
                          " differs from its in-memory data (" + std::to_string(entry.data.size()) +
                          " bytes)");
    if (entry.type == Entry::Type::file && !entry.source.empty() && !entry.data.empty())
        return Unexpected("file " + entry.path + " has both a source and in-memory data");
    return {};
}

Result<void> check_link(const Entry& entry) {
    switch (entry.type) {
    case Entry::Type::symlink:
        if (entry.link.empty()) return Unexpected("symlink " + entry.path + " has no target");
        if (entry.link.find('\0') != std::string::npos)
            return Unexpected("symlink " + entry.path + " has a NUL byte in its target");
        return {};
    case Entry::Type::hardlink:
        if (auto r = check_path(entry.link); !r)
            return Unexpected("hardlink " + entry.path + ": bad target: " + r.error());
        if (entry.link == entry.path)
            return Unexpected("hardlink " + entry.path + " points to itself");
        return {};
    default:
        if (!entry.link.empty())
            return Unexpected(std::string(type_name(entry.type)) + " " + entry.path +
                              " has a link target");
        return {};
    }
}

// Hardlink targets present in the layer must be non-directories met before the link
// (tar readers create the link from the already extracted target).
Result<void> check_hardlinks(const std::vector<Entry>& sorted) {
    auto by_path = [](const Entry& e, std::string_view p) { return path_less(e.path, p); };
    for (const auto& entry : sorted) {
        if (entry.type != Entry::Type::hardlink) continue;
        auto it = std::lower_bound(sorted.begin(), sorted.end(), entry.link, by_path);
        if (it == sorted.end() || it->path != entry.link) continue; // in a lower layer
        if (it->type == Entry::Type::dir)
            return Unexpected("hardlink " + entry.path + " points to directory " + entry.link);
        if (!path_less(it->path, entry.path))
            return Unexpected("hardlink " + entry.path + " points to " + entry.link +
                              ", which sorts after it; link the first path instead");
    }
    return {};
}

} // namespace

bool path_less(std::string_view a, std::string_view b) noexcept {
    // Component-wise, each component compared as unsigned bytes: the same as comparing the
    // whole paths bytewise with '/' below every other byte, since a valid path has no empty
    // component. So: the first differing byte decides ('/' first), else the shorter path.
    auto n = std::min(a.size(), b.size());
    auto diff = std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin());
    if (diff.first == a.begin() + static_cast<std::ptrdiff_t>(n)) return a.size() < b.size();
    auto rank = [](char c) { return c == '/' ? 0 : static_cast<unsigned char>(c) + 1; };
    return rank(*diff.first) < rank(*diff.second);
}

Result<void> check_path(std::string_view path) {
    auto bad = [&](const char* why) {
        return Unexpected("invalid path \"" + std::string(path) + "\": " + why);
    };
    if (path.empty()) return bad("empty");
    if (path.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
    if (path.front() == '/') return bad("absolute");
    if (path.back() == '/') return bad("trailing '/'");
    for (std::string_view rest = path; !rest.empty();) {
        auto component = next_component(rest);
        if (component.empty()) return bad("empty component");
        if (component == "." || component == "..") return bad("'.' or '..' component");
    }
    return {};
}

Result<void> check_entry(const Entry& entry) {
    if (auto r = check_path(entry.path); !r) return r;
    if ((entry.mode & ~07777u) != 0)
        return Unexpected("entry " + entry.path + ": mode " + std::to_string(entry.mode) +
                          " has bits outside 07777");
    if (auto r = check_content(entry); !r) return r;
    if (auto r = check_link(entry); !r) return r;
    return check_xattrs(entry);
}

Result<std::vector<Entry>> sort_entries(std::vector<Entry> entries) {
    for (const auto& entry : entries)
        if (auto r = check_entry(entry); !r) return Unexpected(r.error());
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return path_less(a.path, b.path); });
    auto dup = std::adjacent_find(entries.begin(), entries.end(),
                                  [](const Entry& a, const Entry& b) { return a.path == b.path; });
    if (dup != entries.end()) return Unexpected("duplicate path in layer: " + dup->path);
    if (auto r = check_hardlinks(entries); !r) return Unexpected(r.error());
    return entries;
}

} // namespace factory::layer
