#include "factory/export/image_diff.hpp"

namespace factory::exporter {

namespace {

// A hard link is a file that shares its inode: the same kind of entry for a diff.
bool regular(FileType t) {
    return t == FileType::file || t == FileType::hardlink;
}

std::optional<std::size_t> removal_layer(const ImageFiles& a, const ImageFiles& b,
                                         const std::string& path) {
    if (auto it = b.removed.find(path); it != b.removed.end()) return it->second;
    auto layer = a.files.at(path).layer;
    if (layer < b.layers.size()) return layer;
    return std::nullopt;
}

} // namespace

std::vector<std::string> file_differences(const FileInfo& a, const FileInfo& b) {
    std::vector<std::string> what;
    bool same_type = a.type == b.type || (regular(a.type) && regular(b.type));
    if (!same_type) what.push_back("type");
    if (same_type && regular(a.type) && a.sha256 != b.sha256) what.push_back("content");
    if (same_type && (a.major != b.major || a.minor != b.minor)) what.push_back("device");
    if (a.mode != b.mode) what.push_back("mode");
    if (a.uid != b.uid || a.gid != b.gid) what.push_back("owner");
    if (same_type && a.type == FileType::symlink && a.link != b.link) what.push_back("link");
    if (a.xattrs != b.xattrs) what.push_back("xattrs");
    return what;
}

ImageDiff diff_images(const ImageFiles& a, const ImageFiles& b) {
    ImageDiff d;
    d.a = a.digest;
    d.b = b.digest;
    auto ia = a.files.begin();
    auto ib = b.files.begin();
    while (ia != a.files.end() || ib != b.files.end()) {
        FileChange c;
        if (ib == b.files.end() || (ia != a.files.end() && ia->first < ib->first)) {
            c.path = ia->first;
            c.kind = ChangeKind::removed;
            c.a = ia->second;
            c.layer = removal_layer(a, b, ia->first);
            ++ia;
        } else if (ia == a.files.end() || ib->first < ia->first) {
            c.path = ib->first;
            c.kind = ChangeKind::added;
            c.b = ib->second;
            c.layer = ib->second.layer;
            ++ib;
        } else {
            c.what = file_differences(ia->second, ib->second);
            c.path = ib->first;
            c.a = ia->second;
            c.b = ib->second;
            c.layer = ib->second.layer;
            ++ia;
            ++ib;
            if (c.what.empty()) continue;
        }
        d.changes.push_back(std::move(c));
    }
    for (std::size_t i = 0; i < b.layers.size(); ++i) {
        LayerSummary s;
        s.index = i;
        s.info = b.layers[i];
        s.shared = i < a.layers.size() && a.layers[i].digest == b.layers[i].digest;
        d.layers.push_back(s);
    }
    for (const auto& c : d.changes) {
        if (!c.layer || *c.layer >= d.layers.size()) continue;
        auto& s = d.layers[*c.layer];
        if (c.kind == ChangeKind::added) ++s.added;
        if (c.kind == ChangeKind::changed) ++s.changed;
        if (c.kind == ChangeKind::removed) ++s.removed;
        if (c.b && c.b->type == FileType::file) s.bytes += c.b->size;
    }
    return d;
}

const char* kind_name(ChangeKind k) {
    switch (k) {
    case ChangeKind::added:
        return "added";
    case ChangeKind::removed:
        return "removed";
    case ChangeKind::changed:
        return "changed";
    }
    return "?";
}

} // namespace factory::exporter
