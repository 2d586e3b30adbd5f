#include "factory/export/image_files.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>

#include <ctime>
#include <functional>
#include <memory>
#include <set>

#include "factory/oci/image_config.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/runtime/applier.hpp"
#include "factory/runtime/layer_stream.hpp"
#include "factory/runtime/tar_reader.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"

namespace factory::exporter {

namespace {

std::string quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? "" : path.substr(0, slash);
}

// One layer applied to the metadata tree, with the caps of the applier (runtime::ApplyLimits).
class LayerReader {
  public:
    // hash_content false: headers only (FileInfo::sha256 stays empty; the data is not read).
    LayerReader(ImageFiles& out, std::size_t layer, const runtime::ApplyLimits& limits,
                bool hash_content = true)
        : out_(out), layer_(layer), limits_(limits), hash_content_(hash_content) {}

    Result<void> entry(archive* a, archive_entry* e);
    std::uint64_t entries = 0;

  private:
    Result<std::string> clean(const char* raw) const;
    void remove_tree(const std::string& path, bool keep_this_layer);
    void add_parents(const std::string& path);
    void put(const std::string& path, FileInfo info);
    Result<void> content(archive* a, const std::string& path, FileInfo& info);
    Result<void> xattrs(archive_entry* e, const std::string& path, FileInfo& info);

    ImageFiles& out_;
    std::size_t layer_;
    const runtime::ApplyLimits& limits_;
    std::set<std::string> written_; // by this layer (an opaque directory keeps them)
    bool hash_content_;
};

Result<std::string> LayerReader::clean(const char* raw) const {
    if (!raw) return Unexpected("an entry has no name");
    std::string out;
    std::string_view rest(raw);
    std::uint64_t depth = 0;
    while (!rest.empty()) {
        auto slash = rest.find('/');
        auto c = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (c.empty() || c == ".") continue;
        if (c == "..") return Unexpected("entry " + quote(raw) + ": '..' in the path");
        if (++depth > limits_.max_depth)
            return Unexpected("entry " + quote(std::string(raw).substr(0, 200)) + ": deeper than " +
                              std::to_string(limits_.max_depth) + " components");
        if (!out.empty()) out += '/';
        out += c;
        if (out.size() > limits_.max_path_length)
            return Unexpected("entry " + quote(std::string(raw).substr(0, 200)) +
                              ": path longer than " + std::to_string(limits_.max_path_length) +
                              " bytes");
    }
    return out;
}

// Removes path's descendants (and path itself unless it is ""), recording each as removed by
// this layer; keep_this_layer keeps what this layer wrote (an opaque directory hides only the
// lower layers: image-spec layer.md "Opaque Whiteout").
void LayerReader::remove_tree(const std::string& path, bool keep_this_layer) {
    auto& files = out_.files;
    std::string prefix = path.empty() ? "" : path + "/";
    auto it = path.empty() ? files.begin() : files.lower_bound(prefix);
    while (it != files.end() && it->first.starts_with(prefix)) {
        if (it->first.empty() || (keep_this_layer && written_.contains(it->first))) {
            ++it;
            continue;
        }
        out_.removed[it->first] = layer_;
        it = files.erase(it);
    }
    if (!path.empty() && !keep_this_layer && files.erase(path) > 0) out_.removed[path] = layer_;
}

void LayerReader::add_parents(const std::string& path) {
    for (auto p = parent_of(path); !p.empty(); p = parent_of(p)) {
        if (out_.files.contains(p)) break;
        FileInfo dir;
        dir.type = FileType::dir;
        dir.mode = 0755;
        dir.layer = layer_;
        dir.implied = true;
        out_.files.emplace(p, dir);
        out_.removed.erase(p);
        written_.insert(p);
    }
}

void LayerReader::put(const std::string& path, FileInfo info) {
    auto it = out_.files.find(path);
    if (it != out_.files.end() && (it->second.type != FileType::dir || info.type != FileType::dir))
        remove_tree(path, false);
    add_parents(path);
    info.layer = layer_;
    out_.files[path] = std::move(info);
    out_.removed.erase(path);
    written_.insert(path);
}

// The file's content hashed as it reads (sparse holes as the zeros they read as).
Result<void> LayerReader::content(archive* a, const std::string& path, FileInfo& info) {
    Sha256 hash;
    std::uint64_t pos = 0;
    static const char zeros[65536] = {};
    for (;;) {
        const void* buf = nullptr;
        size_t len = 0;
        la_int64_t offset = 0;
        int r = archive_read_data_block(a, &buf, &len, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return Unexpected("entry " + quote(path) + ": " + archive_error_string(a));
        for (auto at = static_cast<std::uint64_t>(offset); pos < at;) {
            auto n = std::min<std::uint64_t>(at - pos, sizeof zeros);
            hash.update(zeros, n);
            pos += n;
        }
        hash.update(buf, len);
        pos += len;
    }
    for (; pos < info.size;) {
        auto n = std::min<std::uint64_t>(info.size - pos, sizeof zeros);
        hash.update(zeros, n);
        pos += n;
    }
    info.sha256 = hash.hex_digest();
    return {};
}

Result<void> LayerReader::xattrs(archive_entry* e, const std::string& path, FileInfo& info) {
    return runtime::for_each_xattr(
        e, path, limits_.max_xattr_bytes,
        [&](const char* name, const void* value, size_t size) -> Result<void> {
            std::string_view n(name);
            // The applier never writes overlayfs's own attributes either.
            if (n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.")) return {};
            info.xattrs[std::string(n)] = std::string(static_cast<const char*>(value), size);
            return {};
        });
}

Result<void> LayerReader::entry(archive* a, archive_entry* e) {
    if (++entries > limits_.max_entries)
        return Unexpected("more than " + std::to_string(limits_.max_entries) + " entries");
    auto path = clean(archive_entry_pathname(e));
    if (!path) return Unexpected(path.error());
    auto slash = path->rfind('/');
    std::string name = slash == std::string::npos ? *path : path->substr(slash + 1);
    // image-spec layer.md "Whiteouts".
    if (name == ".wh..wh..opq") {
        remove_tree(parent_of(*path), true);
        return {};
    }
    if (name.starts_with(".wh.")) {
        auto parent = parent_of(*path);
        remove_tree((parent.empty() ? "" : parent + "/") + name.substr(4), false);
        return {};
    }
    FileInfo info;
    info.mode = archive_entry_perm(e) & 07777;
    info.uid = archive_entry_uid(e);
    info.gid = archive_entry_gid(e);
    info.mtime = archive_entry_mtime_is_set(e) ? archive_entry_mtime(e) : 0;
    if (auto ok = xattrs(e, *path, info); !ok) return ok;
    if (const char* target = archive_entry_hardlink(e)) {
        auto t = clean(target);
        if (!t) return Unexpected(t.error());
        auto it = out_.files.find(*t);
        if (it == out_.files.end() ||
            (it->second.type != FileType::file && it->second.type != FileType::hardlink))
            return Unexpected("entry " + quote(*path) + ": hard link to " + quote(*t) +
                              ", which is not a file of the image");
        // One inode: the link has its target's metadata.
        FileInfo linked = it->second;
        linked.type = FileType::hardlink;
        linked.link = it->second.type == FileType::hardlink ? it->second.link : *t;
        put(*path, std::move(linked));
        return {};
    }
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
        info.type = FileType::file;
        info.size = static_cast<std::uint64_t>(std::max<la_int64_t>(0, archive_entry_size(e)));
        if (hash_content_)
            if (auto ok = content(a, *path, info); !ok) return ok;
        break;
    case AE_IFDIR:
        info.type = FileType::dir;
        if (path->empty()) {
            info.layer = layer_;
            out_.files[""] = std::move(info);
            return {};
        }
        break;
    case AE_IFLNK:
        info.type = FileType::symlink;
        info.link = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
        info.size = info.link.size();
        break;
    case AE_IFCHR:
    case AE_IFBLK:
        info.type = archive_entry_filetype(e) == AE_IFCHR ? FileType::chardev : FileType::blockdev;
        info.major = archive_entry_rdevmajor(e);
        info.minor = archive_entry_rdevminor(e);
        break;
    case AE_IFIFO:
        info.type = FileType::fifo;
        break;
    case AE_IFSOCK:
        return {}; // never made on disk either
    default:
        return Unexpected("entry " + quote(*path) + ": unknown file type");
    }
    if (path->empty()) return Unexpected("entry \".\": not a directory");
    put(*path, std::move(info));
    return {};
}

void read_layer(ImageFiles& out, std::size_t index, const std::filesystem::path& blob,
                const oci::Descriptor& layer, const std::string& diff_id) {
    runtime::ApplyLimits limits;
    auto prefix = "layer " + layer.digest + ": ";
    // The one layer reader (runtime/tar_reader.hpp): its caps and its words for a bad stream.
    auto tar = runtime::TarReader::open(blob, runtime::compression_of_media_type(layer.media_type),
                                        limits.stream);
    if (!tar) throw Error(tar.error());
    auto& r = **tar;
    LayerReader reader(out, index, limits);
    for (;;) {
        auto e = r.next();
        if (!e) throw Error(e.error());
        if (!*e) break;
        if (auto ok = reader.entry(r.handle(), *e); !ok)
            throw Error(r.stream_error().empty() ? prefix + ok.error()
                                                 : r.prefix() + r.stream_error());
    }
    if (auto done = r.finish(); !done) throw Error(done.error());
    if (r.stream().digest() != layer.digest)
        throw Error(prefix + "the blob hashes to " + r.stream().digest());
    if (!diff_id.empty() && r.stream().diff_id() != diff_id)
        throw Error(prefix + "the uncompressed layer hashes to " + r.stream().diff_id() +
                    ", but its diff_id is " + diff_id);
    out.layers[index].entries = reader.entries;
}

} // namespace

std::int64_t created_epoch(const oci::ImageConfig& config) {
    auto created = config.json().value("created", std::string());
    std::tm tm{};
    if (created.size() < 19 || !::strptime(created.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    return static_cast<std::int64_t>(::timegm(&tm));
}

namespace {

// Reads the image's manifest and config, and calls read(index, layer, blob, diff_id) for each
// layer in order on an ImageFiles holding the root and the layers' history.
ImageFiles image_files_by_layer(
    const oci::Layout& store, const oci::Descriptor& image,
    const std::function<void(ImageFiles&, std::size_t, const oci::Descriptor&,
                             const std::filesystem::path&, const std::string&)>& read) {
    auto manifest = value_or_throw(store.read_manifest(image));
    auto config = value_or_throw(store.read_config(manifest.config, manifest.layers.size()));
    auto diff_ids = config.diff_ids();
    auto history = config.history();
    ImageFiles out;
    out.digest = image.digest;
    out.created = created_epoch(config);
    FileInfo root;
    root.type = FileType::dir;
    root.mode = 0755;
    root.implied = true;
    out.files.emplace("", root);
    std::size_t h = 0;
    for (std::size_t i = 0; i < manifest.layers.size(); ++i) {
        while (h < history.size() && history[h].empty_layer)
            ++h;
        const auto& layer = manifest.layers[i];
        LayerInfo info;
        info.digest = layer.digest;
        info.size = static_cast<std::uint64_t>(layer.size);
        if (h < history.size()) info.created_by = history[h++].created_by;
        out.layers.push_back(info);
        auto hex = value_or_throw(layer.sha256_hex());
        read(out, i, layer, store.blobs().path(hex), i < diff_ids.size() ? diff_ids[i] : "");
    }
    return out;
}

} // namespace

ImageFiles read_image_files(const oci::Layout& store, const oci::Descriptor& image) {
    return image_files_by_layer(store, image,
                                [](ImageFiles& out, std::size_t i, const oci::Descriptor& layer,
                                   const std::filesystem::path& blob, const std::string& diff_id) {
                                    read_layer(out, i, blob, layer, diff_id);
                                });
}

ImageFiles flatten_image_files(const oci::Layout& store, const oci::Descriptor& image,
                               const std::filesystem::path& root) {
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) throw Error("cannot open " + root.string() + ": " + errno_string(errno));
    return image_files_by_layer(
        store, image,
        [&](ImageFiles& out, std::size_t i, const oci::Descriptor& layer,
            const std::filesystem::path& blob, const std::string& diff_id) {
            runtime::ApplyOptions options;
            options.mode = runtime::ApplyMode::rootfs;
            options.compression = runtime::compression_of_media_type(layer.media_type);
            options.expected_digest = layer.digest;
            options.expected_diff_id = diff_id;
            LayerReader reader(out, i, options.limits, false);
            options.observe = [&](archive_entry* e) { return reader.entry(nullptr, e); };
            auto stats = runtime::apply_layer(blob, root_fd.get(), options);
            if (!stats) throw Error("layer " + layer.digest + ": " + stats.error());
            out.layers[i].entries = reader.entries;
        });
}

const char* type_name(FileType t) {
    switch (t) {
    case FileType::file:
        return "file";
    case FileType::dir:
        return "dir";
    case FileType::symlink:
        return "symlink";
    case FileType::hardlink:
        return "hardlink";
    case FileType::chardev:
        return "char";
    case FileType::blockdev:
        return "block";
    case FileType::fifo:
        return "fifo";
    }
    return "?";
}

} // namespace factory::exporter
