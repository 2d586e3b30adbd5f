#include "factory/builder/tree.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>

#include <memory>

#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/pattern.hpp"
#include "factory/util/sha256.hpp"
#include "factory/runtime/tar_reader.hpp"

namespace factory::builder {

namespace {

using layer::Entry;

constexpr std::size_t max_layer_entries = 1'000'000;
constexpr int max_symlink_hops = 40;
constexpr std::string_view whiteout_prefix = ".wh.";
constexpr std::string_view opaque_marker = ".wh..wh..opq";

std::string base_name(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_whiteout(std::string_view path) {
    return path.substr(path.rfind('/') + 1).starts_with(whiteout_prefix); // npos + 1 == 0
}

std::string dir_name(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
}

// A layer's entry name → the tree's path form; nullopt for a name that escapes the root.
std::optional<std::string> layer_path(const char* name) {
    if (!name) return std::nullopt;
    std::string cleaned = clean_relative(name);
    for (std::size_t start = 0; start <= cleaned.size();) {
        auto end = cleaned.find('/', start);
        if (end == std::string::npos) end = cleaned.size();
        if (cleaned.compare(start, end - start, "..") == 0) return std::nullopt;
        start = end + 1;
    }
    return cleaned;
}

// A layer entry as the tree keeps it; nullopt for what a copy can't take (devices, FIFOs) and
// for the root itself. Throws Error for a name or link that leaves the root.
std::optional<Entry> entry_of(runtime::TarReader& tar, archive_entry* ae) {
    const char* raw = archive_entry_pathname(ae);
    auto path = layer_path(raw);
    if (!path)
        throw Error(tar.prefix() + "entry '" + std::string(raw ? raw : "") + "' leaves the root");
    if (path->empty()) return std::nullopt; // "./" itself
    Entry e;
    e.path = *path;
    e.mode = archive_entry_perm(ae) & 07777;
    e.uid = static_cast<std::uint32_t>(archive_entry_uid(ae));
    e.gid = static_cast<std::uint32_t>(archive_entry_gid(ae));
    if (const char* hl = archive_entry_hardlink(ae)) {
        auto target = layer_path(hl);
        if (!target || target->empty())
            throw Error(tar.prefix() + "hardlink '" + e.path + "' points out of the root");
        e.type = Entry::Type::hardlink;
        e.link = *target;
    } else {
        switch (archive_entry_filetype(ae)) {
        case AE_IFDIR:
            e.type = Entry::Type::dir;
            break;
        case AE_IFLNK:
            e.type = Entry::Type::symlink;
            e.link = archive_entry_symlink(ae) ? archive_entry_symlink(ae) : "";
            break;
        case AE_IFREG:
            e.type = Entry::Type::file;
            break;
        default:
            return std::nullopt; // devices and FIFOs can't be copied by a copy step
        }
    }
    for (archive_entry_xattr_reset(ae);;) {
        const char* name = nullptr;
        const void* value = nullptr;
        std::size_t size = 0;
        if (archive_entry_xattr_next(ae, &name, &value, &size) != ARCHIVE_OK) break;
        e.xattrs.emplace_back(name, std::string(static_cast<const char*>(value), size));
    }
    e.size = archive_entry_size_is_set(ae) ? static_cast<std::uint64_t>(archive_entry_size(ae)) : 0;
    return e;
}

// The sha256 of the content an entry's extraction writes (extract() below: the data at its
// offsets, holes as zeros); "" when that is not `size` bytes (a sparse file ending in a hole),
// whose digest is then taken from the extracted file.
std::string content_digest(runtime::TarReader& tar, std::uint64_t size) {
    Sha256 sha;
    std::uint64_t at = 0;
    static const std::string zeros(64 << 10, '\0');
    value_or_throw(tar.read_data([&](std::int64_t offset, std::string_view data) -> Result<void> {
        auto start = static_cast<std::uint64_t>(offset);
        if (start < at) return Unexpected(tar.prefix() + "data out of order");
        for (; at < start; at += std::min<std::uint64_t>(zeros.size(), start - at))
            sha.update(zeros.data(), std::min<std::uint64_t>(zeros.size(), start - at));
        sha.update(data);
        at += data.size();
        return {};
    }));
    return at == size ? sha.hex_digest() : std::string();
}

// A file's content to `dest` (a new file of the build's scratch, never a path of the layer).
void extract(runtime::TarReader& tar, Entry& e, const std::filesystem::path& dest) {
    Fd fd(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) throw Error("cannot create " + dest.string() + ": " + errno_string(errno));
    e.size = 0;
    value_or_throw(tar.read_data([&](std::int64_t offset, std::string_view data) -> Result<void> {
        if (::pwrite(fd.get(), data.data(), data.size(), offset) !=
            static_cast<ssize_t>(data.size()))
            return Unexpected("cannot write " + dest.string() + ": " + errno_string(errno));
        e.size = static_cast<std::uint64_t>(offset) + data.size();
        return {};
    }));
    e.source = dest.string();
}

} // namespace

void Tree::remove_subtree(const std::string& path, bool keep_self) {
    if (!keep_self) {
        entries_.erase(path);
        pending_.erase(path);
    }
    std::string prefix = path.empty() ? std::string() : path + "/";
    for (auto it = entries_.lower_bound(prefix); it != entries_.end();) {
        if (!it->first.starts_with(prefix)) break;
        it = entries_.erase(it);
    }
    for (auto it = pending_.lower_bound(prefix); it != pending_.end();) {
        if (!it->first.starts_with(prefix)) break;
        it = pending_.erase(it);
    }
}

void Tree::apply_whiteouts(const std::vector<Entry>& entries) {
    // image-spec layer.md: whiteouts hide lower content only, so apply them all first.
    for (const auto& e : entries) {
        auto name = base_name(e.path);
        if (!name.starts_with(whiteout_prefix)) continue;
        auto dir = dir_name(e.path);
        if (name == opaque_marker)
            remove_subtree(dir, true);
        else if (name.size() > whiteout_prefix.size() && !name.starts_with(".wh..wh."))
            remove_subtree(join(dir, name.substr(whiteout_prefix.size())), false);
    }
}

void Tree::put(Entry&& e) {
    auto it = entries_.lower_bound(e.path);
    if (it != entries_.end() && it->first == e.path) {
        bool both_dirs = it->second.type == Entry::Type::dir && e.type == Entry::Type::dir;
        if (!both_dirs) {
            remove_subtree(e.path, false);
            it = entries_.lower_bound(e.path);
        }
    }
    if (!pending_.empty()) pending_.erase(e.path);
    if (it != entries_.end() && it->first == e.path) {
        it->second = std::move(e);
    } else {
        std::string path = e.path;
        entries_.emplace_hint(it, std::move(path), std::move(e));
    }
}

void Tree::apply(const std::vector<Entry>& entries) {
    apply_whiteouts(entries);
    for (const auto& e : entries)
        if (!is_whiteout(e.path)) put(Entry(e));
}

void Tree::apply(std::vector<Entry>&& entries) {
    apply_whiteouts(entries);
    for (auto& e : entries)
        if (!is_whiteout(e.path)) put(std::move(e));
}

LayerListing Tree::list_layer_blob(const std::filesystem::path& blob,
                                   const runtime::StreamLimits& limits, const std::string& digest) {
    auto reader = runtime::TarReader::open(blob, std::nullopt, limits);
    if (!reader) throw Error(reader.error());
    auto& tar = **reader;
    LayerListing listing;
    for (;;) {
        auto ae = value_or_throw(tar.next());
        if (!ae) break;
        if (listing.entries.size() >= max_layer_entries)
            throw Error(tar.prefix() + "more than " + std::to_string(max_layer_entries) +
                        " entries");
        auto e = entry_of(tar, ae);
        if (!e) continue;
        // Read the data (not kept) so that a damaged entry is refused here, in the reader's
        // words for that entry, as the applier refuses it; and hash it, so that a copy from
        // the stage is keyed without taking the file out of its layer.
        if (e->type == Entry::Type::file) e->sha256 = content_digest(tar, e->size);
        listing.entries.push_back(std::move(*e));
        listing.ordinals.push_back(tar.entries());
    }
    value_or_throw(tar.finish());
    if (!digest.empty() && tar.stream().digest() != digest)
        throw Error("blob " + digest + " is corrupt: content hashes to " + tar.stream().digest());
    return listing;
}

void Tree::apply_layer_blob(const std::filesystem::path& blob,
                            const std::filesystem::path& content_dir,
                            const runtime::StreamLimits& limits) {
    apply_listing(list_layer_blob(blob, limits), blob, content_dir, limits);
}

void Tree::apply_listing(LayerListing listing, const std::filesystem::path& blob,
                         const std::filesystem::path& content_dir,
                         const runtime::StreamLimits& limits, std::function<Result<void>()> check) {
    // Where the content of each path is, noted before apply() takes the entries: applying
    // drops what lower layers had pending at those paths, so it is set after.
    struct Placed {
        std::string path;
        std::uint64_t ordinal;
        bool file;
    };
    std::vector<Placed> placed;
    if (!content_dir.empty())
        for (std::size_t i = 0; i < listing.entries.size(); ++i)
            if (const auto& e = listing.entries[i]; !is_whiteout(e.path))
                placed.push_back({e.path, listing.ordinals[i], e.type == Entry::Type::file});
    apply(std::move(listing.entries));
    if (content_dir.empty()) return;
    if (!lazy_) lazy_ = std::make_shared<Lazy>();
    std::lock_guard lock(lazy_->mutex);
    lazy_->dir = content_dir;
    lazy_->blobs.push_back({blob, limits, std::move(check)});
    std::size_t index = lazy_->blobs.size() - 1;
    // The last entry of a path in the layer is the one the tree holds.
    for (const auto& p : placed) {
        if (p.file)
            pending_[p.path] = {lazy_, index, p.ordinal};
        else
            pending_.erase(p.path);
    }
}

std::map<std::string, std::string> Tree::contents(const std::vector<std::string>& paths) const {
    std::map<std::string, std::string> out;
    // layers (whose Lazy, which blob) → ordinal → the paths whose content it is
    using Layer = std::pair<Lazy*, std::size_t>;
    std::map<Layer, std::map<std::uint64_t, std::vector<std::string>>> todo;
    for (const auto& p : paths)
        if (auto it = pending_.find(p); it != pending_.end())
            todo[{it->second.lazy.get(), it->second.blob}][it->second.ordinal].push_back(p);
    for (auto& [where, wanted] : todo) {
        auto& [lazy, index] = where;
        std::lock_guard lock(lazy->mutex);
        // What was extracted before (by this tree, a copy of it, or a tree it gave content).
        for (auto it = wanted.begin(); it != wanted.end();) {
            auto done = lazy->extracted.find({index, it->first});
            if (done == lazy->extracted.end()) {
                ++it;
                continue;
            }
            for (const auto& p : it->second)
                out[p] = done->second;
            it = wanted.erase(it);
        }
        if (wanted.empty()) continue;
        auto& layer = lazy->blobs[index];
        if (layer.check) {
            if (auto ok = layer.check(); !ok) throw Error(ok.error());
            layer.check = nullptr;
        }
        auto reader = runtime::TarReader::open(layer.path, std::nullopt, layer.limits);
        if (!reader) throw Error(reader.error());
        auto& tar = **reader;
        auto next = wanted.begin();
        while (next != wanted.end()) {
            auto ae = value_or_throw(tar.next());
            if (!ae)
                throw Error(tar.prefix() + "entry " + std::to_string(next->first) +
                            " is gone: the layer changed since it was read");
            if (tar.entries() != next->first) continue;
            Entry e;
            auto file = lazy->dir / std::to_string(lazy->files++);
            extract(tar, e, file);
            lazy->extracted[{index, next->first}] = file.string();
            for (const auto& p : next->second)
                out[p] = file.string();
            ++next;
        }
    }
    return out;
}

void Tree::adopt_content(const std::string& path, const Tree& from, const std::string& from_path) {
    if (auto it = from.pending_.find(from_path); it != from.pending_.end())
        pending_[path] = it->second;
}

const Entry* Tree::find(const std::string& path) const {
    auto it = entries_.find(path);
    return it == entries_.end() ? nullptr : &it->second;
}

std::optional<std::string> Tree::resolve(const std::string& path, bool follow_last) const {
    std::vector<std::string> todo; // components still to walk, in reverse order
    auto push_components = [&](const std::string& p) {
        std::vector<std::string> parts;
        for (std::size_t start = 0; start <= p.size();) {
            auto end = p.find('/', start);
            if (end == std::string::npos) end = p.size();
            if (end > start) parts.push_back(p.substr(start, end - start));
            start = end + 1;
        }
        for (auto it = parts.rbegin(); it != parts.rend(); ++it)
            todo.push_back(*it);
    };
    push_components(path);
    std::string resolved;
    int hops = 0;
    while (!todo.empty()) {
        std::string part = std::move(todo.back());
        todo.pop_back();
        if (part == ".") continue;
        if (part == "..") {
            resolved = dir_name(resolved); // ".." at the root stays at the root
            continue;
        }
        std::string candidate = join(resolved, part);
        const Entry* e = find(candidate);
        if (e && e->type == Entry::Type::symlink && (!todo.empty() || follow_last)) {
            if (++hops > max_symlink_hops) return std::nullopt;
            if (e->link.starts_with("/")) resolved.clear();
            push_components(e->link);
            continue;
        }
        resolved = std::move(candidate);
    }
    return resolved;
}

std::vector<const Entry*> Tree::below(const std::string& dir) const {
    std::vector<const Entry*> out;
    std::string prefix = dir.empty() ? std::string() : dir + "/";
    for (auto it = entries_.lower_bound(prefix); it != entries_.end(); ++it) {
        if (!it->first.starts_with(prefix)) break;
        out.push_back(&it->second);
    }
    return out;
}

} // namespace factory::builder
