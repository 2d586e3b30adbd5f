#include "factory/oci/import.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "factory/oci/digest.hpp"
#include "factory/oci/json_fields.hpp"
#include "factory/oci/layout.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/oci/reference.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/archive_loader.hpp"

namespace factory::oci {

namespace {

// Where an image's blobs are while we import it.
struct Source {
    std::string name; // "oci-archive:FILE" or "oci:DIR", for messages
    Index index;
    std::function<std::optional<fs::path>(const std::string& hex)> locate;
    // Brings a located blob into dest (verifying it unless it was verified already).
    std::function<Result<void>(const Descriptor&, const fs::path&)> transfer;
};

Result<std::string> read_json_blob(const Source& src, const Descriptor& d,
                                   const ImportLimits& limits) {
    auto hex = d.sha256_hex();
    if (!hex) return Unexpected(hex.error());
    if (static_cast<std::uint64_t>(d.size) > limits.max_json)
        return Unexpected("blob " + d.digest + " is " + std::to_string(d.size) +
                          " bytes, over the limit of " + std::to_string(limits.max_json));
    auto path = src.locate(*hex);
    if (!path) return Unexpected("blob " + d.digest + " is missing from " + src.name);
    auto bytes = read_file(*path, limits.max_json);
    if (!bytes) return Unexpected(bytes.error());
    if (static_cast<std::int64_t>(bytes->size()) != d.size)
        return Unexpected(path->string() + ": size is " + std::to_string(bytes->size()) +
                          " bytes, its descriptor says " + std::to_string(d.size));
    if (auto actual = Sha256::hex(*bytes); actual != *hex)
        return Unexpected(path->string() +
                          ": content does not match its digest (got sha256:" + actual + ")");
    return bytes;
}

Result<ImportedImage> import_image(const Source& src, std::string_view tag,
                                   const Platform& platform, const ImportLimits& limits) {
    BlobReader reader = [&](const Descriptor& d) { return read_json_blob(src, d, limits); };
    auto found = resolve_ref(src.index, tag, platform, reader);
    if (!found) return Unexpected(src.name + ": " + found.error());
    if (!*found) {
        if (tag.empty())
            return Unexpected(src.name + ": its index.json lists " +
                              std::to_string(src.index.manifests.size()) +
                              " images; name one with :TAG");
        return Unexpected(src.name + ": no image named " + detail::quote(tag));
    }
    ImportedImage out{**found, {}, ImageConfig{}};
    const auto& md = out.manifest_desc;
    auto mbytes = reader(md);
    if (!mbytes) return Unexpected(src.name + ": " + mbytes.error());
    auto manifest = parse_manifest(*mbytes, md.media_type);
    if (!manifest) return Unexpected(src.name + ": " + md.digest + ": " + manifest.error());
    out.manifest = std::move(*manifest);
    const auto& m = out.manifest;
    if (!media_type::is_config(m.config.media_type))
        return Unexpected(src.name + ": " + md.digest +
                          " is not a container image (its config is " +
                          detail::quote(m.config.media_type) + ")");
    auto cbytes = reader(m.config);
    if (!cbytes) return Unexpected(src.name + ": " + cbytes.error());
    auto config = ImageConfig::parse(*cbytes, m.layers.size());
    if (!config) return Unexpected(src.name + ": " + m.config.digest + ": " + config.error());
    out.config = std::move(*config);

    // Check every layer before copying any, so a broken source leaves nothing behind.
    std::vector<std::pair<Descriptor, fs::path>> todo;
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const auto& l = m.layers[i];
        auto what = "layer " + std::to_string(i + 1) + " of " + std::to_string(m.layers.size()) +
                    " (" + l.digest + ")";
        if (!media_type::is_layer(l.media_type))
            return Unexpected(src.name + ": " + what + " has unsupported media type " +
                              detail::quote(l.media_type));
        if (static_cast<std::uint64_t>(l.size) > limits.max_blob)
            return Unexpected(src.name + ": " + what + " is over the size limit");
        auto hex = l.sha256_hex();
        if (!hex) return Unexpected(src.name + ": " + what + ": " + hex.error());
        auto path = src.locate(*hex);
        if (!path) return Unexpected(src.name + ": " + what + " is missing");
        todo.emplace_back(l, *path);
    }
    // Referenced before referrer: layers, then config, then manifest.
    for (const auto* d : {&m.config, &md}) {
        auto path = src.locate(*d->sha256_hex());
        if (!path) return Unexpected(src.name + ": blob " + d->digest + " is missing");
        todo.emplace_back(*d, *path);
    }
    for (const auto& [d, path] : todo)
        if (auto r = src.transfer(d, path); !r) return Unexpected(src.name + ": " + r.error());
    return out;
}

// ---- archives ----

struct ArchiveFree {
    void operator()(archive* a) const noexcept { archive_read_free(a); }
};

enum class EntryKind { directory, layout, index, blob, docker_manifest, named, ignored };

struct Entry {
    EntryKind kind;
    std::string hex; // for blobs
};

// Classifies a tar entry name of an OCI layout; refuses anything else. A docker-archive may
// also hold Docker's legacy files (manifest.json, <id>.json configs, <id>/layer.tar, <id>/json,
// <id>/VERSION), each a plain name of at most two components.
Result<Entry> classify(std::string_view name, bool is_dir, bool docker) {
    auto bad = [&](const std::string& why) -> Result<Entry> {
        return Unexpected("entry " + detail::quote(name) + ": " + why);
    };
    std::string_view n = name;
    if (n.starts_with("./")) n.remove_prefix(2);
    if (n.starts_with("/")) return bad("absolute names are not allowed");
    if (is_dir && n.ends_with("/")) n.remove_suffix(1);
    if (n.empty() || n == ".") {
        if (is_dir) return Entry{EntryKind::directory, {}};
        return bad("not a directory");
    }
    // Components must be plain names: no "", ".", "..".
    for (std::size_t start = 0;;) {
        auto slash = n.find('/', start);
        auto comp = n.substr(start, slash == std::string_view::npos ? n.npos : slash - start);
        if (comp.empty() || comp == "." || comp == "..")
            return bad("\"..\", \".\" and empty path components are not allowed");
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    if (n == "blobs" || n == "blobs/sha256") {
        if (is_dir) return Entry{EntryKind::directory, {}};
        return bad("must be a directory");
    }
    bool nested = n.find('/') != std::string_view::npos;
    bool deep = nested && n.find('/', n.find('/') + 1) != std::string_view::npos;
    if (docker && is_dir && !nested) return Entry{EntryKind::directory, {}};
    if (is_dir)
        return bad(docker ? "unexpected directory in a docker-archive"
                          : "unexpected directory in an OCI archive");
    if (n == "oci-layout") return Entry{EntryKind::layout, {}};
    if (n == "index.json") return Entry{EntryKind::index, {}};
    if (n == "manifest.json" && docker) return Entry{EntryKind::docker_manifest, {}};
    if (n == "manifest.json" || n == "repositories") return Entry{EntryKind::ignored, {}};
    if (n.starts_with("blobs/sha256/")) {
        auto hex = n.substr(13);
        if (!cache::is_sha256_hex(hex)) return bad("blob names must be 64 lower-case hex digits");
        return Entry{EntryKind::blob, std::string(hex)};
    }
    if (docker && !deep) return Entry{EntryKind::named, {}};
    return bad(docker ? "not part of a docker-archive" : "not part of an OCI image layout");
}

class ArchiveReader {
  public:
    // docker: a docker-archive (Docker's legacy files accepted, manifest.json kept).
    ArchiveReader(const fs::path& path, cache::BlobStore& dest, const fs::path& staging,
                  const ImportLimits& limits, bool docker = false)
        : path_(path), dest_(dest), staging_(staging), limits_(limits), docker_(docker) {}

    Result<void> run();

    std::optional<std::string> layout_json, index_json, docker_manifest_json;
    std::map<std::string, fs::path> staged;   // hex → verified temp file
    std::map<std::string, std::string> named; // a docker-archive's file name → its sha256 hex
    // A docker-archive's "<id>/layer.tar" → the top-level file it links to ("<hex>.tar"), as
    // skopeo and docker write them: names only, never followed on the host.
    std::map<std::string, std::string> links;

  private:
    Result<void> entry(archive_entry* e);
    Result<std::string> read_small(std::int64_t size);
    Result<void> stage_blob(const std::string& hex, std::int64_t size);
    Result<void> stage_named(const std::string& name, std::int64_t size);
    Result<std::string> stream_to(const fs::path& path, std::int64_t size, const std::string& what);
    Result<void> docker_link(archive_entry* e, const std::string& name);
    std::string error_text() const {
        const char* msg = archive_error_string(a_.get());
        return msg ? msg : "unknown libarchive error";
    }
    Unexpected fail(const std::string& what) const {
        return Unexpected((docker_ ? "docker-archive:" : "oci-archive:") + path_.string() + ": " +
                          what);
    }

    fs::path path_;
    cache::BlobStore& dest_;
    fs::path staging_;
    ImportLimits limits_;
    std::unique_ptr<archive, ArchiveFree> a_;
    std::set<std::string> names_;
    std::uint64_t total_ = 0;
    std::size_t entries_ = 0;
    bool docker_ = false;
    std::size_t named_count_ = 0;
};

Result<void> ArchiveReader::run() {
    a_.reset(archive_read_new());
    if (!a_) return fail(archive_null_error());
    // Plain tar only (ustar, pax, GNU): an OCI archive is uncompressed, and no external
    // decompressor is ever run (CVE-2014-9357).
    archive_read_support_format_tar(a_.get());
    archive_read_support_filter_none(a_.get());
    if (archive_read_open_filename(a_.get(), path_.c_str(), 1 << 16) != ARCHIVE_OK)
        return fail("not a readable tar archive: " + error_text());
    for (;;) {
        archive_entry* e = nullptr;
        int r = archive_read_next_header(a_.get(), &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) return fail("not a readable tar archive: " + error_text());
        if (++entries_ > limits_.max_entries)
            return fail("more than " + std::to_string(limits_.max_entries) + " entries");
        if (auto res = entry(e); !res) return res;
    }
    if (docker_) {
        if (!docker_manifest_json) return fail("no manifest.json: not a docker-archive");
        return {};
    }
    if (!layout_json) return fail("no oci-layout file: not an OCI archive");
    if (!index_json) return fail("no index.json: not an OCI archive");
    return {};
}

Result<void> ArchiveReader::entry(archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (!raw) return fail("an entry has no name");
    std::string name = raw;
    auto type = archive_entry_filetype(e);
    if (archive_entry_hardlink(e))
        return fail("entry " + detail::quote(name) + ": hard links are not accepted");
    if (type == AE_IFLNK && docker_) return docker_link(e, name);
    if (type == AE_IFLNK)
        return fail("entry " + detail::quote(name) + ": symlinks are not accepted");
    if (type != AE_IFREG && type != AE_IFDIR)
        return fail("entry " + detail::quote(name) + ": only files and directories are accepted");
    if (archive_entry_sparse_count(e) > 0)
        return fail("entry " + detail::quote(name) + ": sparse files are not accepted");
    auto kind = classify(name, type == AE_IFDIR, docker_);
    if (!kind) return fail(kind.error());
    if (kind->kind == EntryKind::directory) return {};
    std::string key = kind->kind == EntryKind::blob ? "blobs/sha256/" + kind->hex : name;
    if (key.starts_with("./")) key.erase(0, 2);
    if (!names_.insert(key).second) return fail("duplicate entry " + detail::quote(key));
    if (!archive_entry_size_is_set(e)) return fail("entry " + detail::quote(name) + " has no size");
    std::int64_t size = archive_entry_size(e);
    if (size < 0) return fail("entry " + detail::quote(name) + " has a negative size");
    total_ += static_cast<std::uint64_t>(size);
    if (total_ > limits_.max_total) return fail("over the size limit for an archive");
    switch (kind->kind) {
    case EntryKind::layout:
    case EntryKind::index:
    case EntryKind::docker_manifest: {
        if (static_cast<std::uint64_t>(size) > limits_.max_json)
            return fail(name + " is over the limit of " + std::to_string(limits_.max_json) +
                        " bytes");
        auto bytes = read_small(size);
        if (!bytes) return Unexpected(bytes.error());
        (kind->kind == EntryKind::layout  ? layout_json
         : kind->kind == EntryKind::index ? index_json
                                          : docker_manifest_json) = std::move(*bytes);
        return {};
    }
    case EntryKind::named:
        if (static_cast<std::uint64_t>(size) > limits_.max_blob)
            return fail("entry " + detail::quote(name) + " is over the size limit");
        return stage_named(key, size);
    case EntryKind::blob:
        if (static_cast<std::uint64_t>(size) > limits_.max_blob)
            return fail("blob sha256:" + kind->hex + " is over the size limit");
        if (dest_.has(kind->hex)) return {}; // already stored (and verified then): skip the data
        return stage_blob(kind->hex, size);
    default:
        return {}; // ignored: libarchive skips the data on the next header
    }
}

Result<std::string> ArchiveReader::read_small(std::int64_t size) {
    std::string out(static_cast<std::size_t>(size), '\0');
    std::size_t got = 0;
    while (got < out.size()) {
        auto n = archive_read_data(a_.get(), out.data() + got, out.size() - got);
        if (n < 0) return fail(error_text());
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got != out.size()) return fail("truncated entry");
    return out;
}

// The current entry's data into a new file `path`, hashed on the way; its sha256 hex. `what`
// names the entry in errors.
Result<std::string> ArchiveReader::stream_to(const fs::path& path, std::int64_t size,
                                             const std::string& what) {
    Fd fd(
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, cache::BlobStore::blob_mode));
    if (!fd) return fail("cannot create " + path.string() + ": " + errno_string(errno));
    Sha256 h;
    std::vector<char> buf(1 << 18);
    std::uint64_t got = 0;
    for (;;) {
        auto n = archive_read_data(a_.get(), buf.data(), buf.size());
        if (n < 0) return fail(what + ": " + error_text());
        if (n == 0) break;
        h.update(buf.data(), static_cast<std::size_t>(n));
        if (auto w = write_all(fd.get(), buf.data(), static_cast<std::size_t>(n)); !w)
            return fail("cannot write " + path.string() + ": " + w.error());
        got += static_cast<std::uint64_t>(n);
    }
    if (got != static_cast<std::uint64_t>(size)) return fail(what + " is truncated");
    return h.hex_digest();
}

Result<void> ArchiveReader::stage_blob(const std::string& hex, std::int64_t size) {
    auto path = staging_ / hex;
    auto actual = stream_to(path, size, "blob sha256:" + hex);
    if (!actual) return Unexpected(actual.error());
    if (*actual != hex)
        return fail("entry blobs/sha256/" + hex +
                    ": content does not match its name (got sha256:" + *actual + ")");
    staged.emplace(hex, path);
    return {};
}

// "<id>/layer.tar -> ../<hex>.tar": kept as a name to look up, when it stays a plain name at
// the archive's top.
Result<void> ArchiveReader::docker_link(archive_entry* e, const std::string& name) {
    std::string n = name.starts_with("./") ? name.substr(2) : name;
    const char* raw = archive_entry_symlink(e);
    std::string target = raw ? raw : "";
    auto slash = n.find('/');
    bool ok = slash != std::string::npos && n.find('/', slash + 1) == std::string::npos &&
              target.starts_with("../") && target.size() > 3 &&
              target.find('/', 3) == std::string::npos && target.substr(3) != "..";
    if (!ok)
        return fail("entry " + detail::quote(name) + ": a symlink other than <id>/FILE -> ../FILE");
    if (!links.emplace(n, target.substr(3)).second)
        return fail("duplicate entry " + detail::quote(n));
    return {};
}

// A docker-archive's legacy file (a config, a layer.tar): hashed while it streams into the
// staging directory, and staged under its content's sha256 like a blob.
Result<void> ArchiveReader::stage_named(const std::string& name, std::int64_t size) {
    auto path = staging_ / ("named-" + std::to_string(named_count_++));
    auto sum = stream_to(path, size, "entry " + detail::quote(name));
    if (!sum) return Unexpected(sum.error());
    const std::string& hex = *sum;
    named.emplace(name, hex);
    std::error_code ec;
    if (staged.contains(hex) || dest_.has(hex))
        fs::remove(path, ec); // the same bytes under two names, or stored already
    else
        staged.emplace(hex, path);
    return {};
}

Result<void> check_layout_json(const std::string& name, const std::string& bytes) {
    auto j = parse_strict_json(bytes);
    if (!j) return Unexpected(name + ": oci-layout: " + j.error());
    if (!j->is_object() || !j->contains("imageLayoutVersion") ||
        !(*j)["imageLayoutVersion"].is_string())
        return Unexpected(name + ": oci-layout has no imageLayoutVersion");
    auto v = (*j)["imageLayoutVersion"].get<std::string>();
    if (v != layout_version)
        return Unexpected(name + ": unsupported imageLayoutVersion " + detail::quote(v) +
                          " (factory reads 1.0.0)");
    return {};
}

} // namespace

namespace {

// An archive's staged blobs (and the store's) as the Source of import_image.
Source staged_source(std::string name, Index index, ArchiveReader& reader, cache::BlobStore& dest) {
    Source src{std::move(name), std::move(index), {}, {}};
    src.locate = [&reader, &dest](const std::string& hex) -> std::optional<fs::path> {
        if (auto it = reader.staged.find(hex); it != reader.staged.end()) return it->second;
        if (dest.has(hex)) return dest.path(hex);
        return std::nullopt;
    };
    src.transfer = [&reader, &dest](const Descriptor& d, const fs::path& file) -> Result<void> {
        auto hex = *d.sha256_hex();
        auto it = reader.staged.find(hex);
        if (it == reader.staged.end()) return {}; // it was in dest already
        std::error_code ec;
        auto size = fs::file_size(file, ec);
        if (ec || size != static_cast<std::uint64_t>(d.size))
            return Unexpected("blob " + d.digest + " has " + std::to_string(size) +
                              " bytes, its descriptor says " + std::to_string(d.size));
        dest.commit_temp(file, hex); // content was hashed against its name while streaming
        reader.staged.erase(it);
        return {};
    };
    return src;
}

// The layer media type of a staged file, by its first bytes (a legacy docker-archive's
// layer.tar is plain tar; some writers gzip it).
std::string sniff_layer_type(const fs::path& file) {
    char head[4] = {};
    Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    std::string_view magic(head, fd ? std::max<ssize_t>(0, ::read(fd.get(), head, 4)) : 0);
    if (magic.starts_with("\x1f\x8b")) return std::string(media_type::layer_gzip);
    if (magic.starts_with("\x28\xb5\x2f\xfd")) return std::string(media_type::layer_zstd);
    return std::string(media_type::layer_tar);
}

// Docker's manifest.json (a legacy docker-archive: no index.json) as an index of one OCI
// manifest, written into `reader`'s staging: the config and layers are the staged files its
// entry names, the layers typed by their bytes. `tag` picks the entry by RepoTags ("" = the
// only one).
Result<Index> index_from_docker_manifest(ArchiveReader& reader, const cache::BlobStore& dest,
                                         const std::string& name, std::string_view tag,
                                         const fs::path& staging) {
    auto j = parse_strict_json(*reader.docker_manifest_json);
    if (!j) return Unexpected(name + ": manifest.json: " + j.error());
    if (!j->is_array() || j->empty())
        return Unexpected(name + ": manifest.json: expected a non-empty array of images");
    const Json* chosen = nullptr;
    std::string want;
    if (!tag.empty()) {
        auto ref = parse_docker_reference(tag);
        if (!ref) return Unexpected(name + ": " + ref.error());
        want = ref->full();
    }
    for (const auto& img : *j) {
        if (!img.is_object())
            return Unexpected(name + ": manifest.json: an entry is not an object");
        if (want.empty()) {
            if (j->size() > 1)
                return Unexpected(name + ": manifest.json lists " + std::to_string(j->size()) +
                                  " images; name one with :NAME:TAG");
            chosen = &img;
            break;
        }
        if (auto tags = img.find("RepoTags"); tags != img.end() && tags->is_array())
            for (const auto& t : *tags)
                if (t.is_string())
                    if (auto r = parse_docker_reference(t.get<std::string>());
                        r && r->full() == want)
                        chosen = &img;
        if (chosen) break;
    }
    if (!chosen) return Unexpected(name + ": no image named " + detail::quote(tag));
    auto file_of = [&](const Json& v, const std::string& what) -> Result<std::string> {
        if (!v.is_string())
            return Unexpected(name + ": manifest.json: " + what + " is not a string");
        auto n = v.get<std::string>();
        if (n.starts_with("./")) n.erase(0, 2);
        if (n.starts_with("blobs/sha256/") && cache::is_sha256_hex(n.substr(13)))
            return n.substr(13);
        if (auto link = reader.links.find(n); link != reader.links.end()) n = link->second;
        auto it = reader.named.find(n);
        if (it == reader.named.end())
            return Unexpected(name + ": manifest.json names " + detail::quote(n) + " (" + what +
                              "), which the archive lacks");
        return it->second;
    };
    auto locate = [&](const std::string& hex) -> std::optional<fs::path> {
        if (auto it = reader.staged.find(hex); it != reader.staged.end()) return it->second;
        if (dest.has(hex)) return dest.path(hex);
        return std::nullopt;
    };
    Manifest m;
    auto config = chosen->find("Config");
    if (config == chosen->end()) return Unexpected(name + ": manifest.json: no Config");
    auto config_hex = file_of(*config, "Config");
    if (!config_hex) return Unexpected(config_hex.error());
    auto size_of = [&](const std::string& hex) -> std::int64_t {
        std::error_code ec;
        auto p = locate(hex);
        auto n = p ? fs::file_size(*p, ec) : 0;
        return ec ? 0 : static_cast<std::int64_t>(n);
    };
    if (!locate(*config_hex))
        return Unexpected(name + ": the config sha256:" + *config_hex + " is missing");
    m.config.media_type = std::string(media_type::config);
    m.config.digest = "sha256:" + *config_hex;
    m.config.size = size_of(*config_hex);
    auto layers = chosen->find("Layers");
    if (layers == chosen->end() || !layers->is_array())
        return Unexpected(name + ": manifest.json: no Layers array");
    for (const auto& l : *layers) {
        auto hex = file_of(l, "a layer");
        if (!hex) return Unexpected(hex.error());
        auto path = locate(*hex);
        if (!path) return Unexpected(name + ": the layer sha256:" + *hex + " is missing");
        Descriptor d;
        d.media_type = sniff_layer_type(*path);
        d.digest = "sha256:" + *hex;
        d.size = size_of(*hex);
        m.layers.push_back(std::move(d));
    }
    std::string bytes = serialize(m);
    std::string hex = Sha256::hex(bytes);
    auto file = staging / ("manifest-" + hex);
    write_file_atomic(file, bytes);
    reader.staged.emplace(hex, file);
    Index index;
    Descriptor md;
    md.media_type = std::string(media_type::manifest);
    md.digest = "sha256:" + hex;
    md.size = static_cast<std::int64_t>(bytes.size());
    index.manifests.push_back(std::move(md));
    return index;
}

} // namespace

Result<ImportedImage> import_oci_archive(const fs::path& path, std::string_view tag,
                                         cache::BlobStore& dest, const Platform& platform,
                                         const ImportLimits& limits) {
    try {
        TempDir staging(dest.tmp_dir(), std::string(temp_prefix) + "import-");
        ArchiveReader reader(path, dest, staging.path(), limits);
        if (auto r = reader.run(); !r) return Unexpected(r.error());
        std::string name = "oci-archive:" + path.string();
        if (auto r = check_layout_json(name, *reader.layout_json); !r) return Unexpected(r.error());
        auto index = parse_index(*reader.index_json);
        if (!index) return Unexpected(name + ": index.json: " + index.error());
        auto src = staged_source(name, std::move(*index), reader, dest);
        return import_image(src, tag, platform, limits);
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
}

Result<ImportedImage> import_docker_archive(const fs::path& path, std::string_view tag,
                                            cache::BlobStore& dest, const Platform& platform,
                                            const ImportLimits& limits) {
    try {
        TempDir staging(dest.tmp_dir(), std::string(temp_prefix) + "import-");
        ArchiveReader reader(path, dest, staging.path(), limits, true);
        if (auto r = reader.run(); !r) return Unexpected(r.error());
        std::string name = "docker-archive:" + path.string();
        // Docker 25 and later write an OCI layout beside manifest.json: its manifests are
        // kept as they are (their digests stay). Older writers (docker, podman, skopeo) have
        // manifest.json only.
        if (reader.index_json && reader.layout_json) {
            if (auto r = check_layout_json(name, *reader.layout_json); !r)
                return Unexpected(r.error());
            auto index = parse_index(*reader.index_json);
            if (!index) return Unexpected(name + ": index.json: " + index.error());
            std::string want(tag);
            if (!tag.empty())
                if (auto ref = parse_docker_reference(tag)) want = ref->full();
            auto src = staged_source(name, std::move(*index), reader, dest);
            return import_image(src, want, platform, limits);
        }
        auto index = index_from_docker_manifest(reader, dest, name, tag, staging.path());
        if (!index) return Unexpected(index.error());
        auto src = staged_source(name, std::move(*index), reader, dest);
        return import_image(src, "", platform, limits);
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
}

Result<ImportedImage> import_oci_layout(const fs::path& dir, std::string_view tag,
                                        cache::BlobStore& dest, const Platform& platform,
                                        const ImportLimits& limits) {
    try {
        auto layout = Layout::open(dir);
        Source src{"oci:" + dir.string(), layout.index(), {}, {}};
        src.locate = [&](const std::string& hex) -> std::optional<fs::path> {
            if (layout.blobs().has(hex)) return layout.blobs().path(hex);
            return std::nullopt;
        };
        src.transfer = [&](const Descriptor& d, const fs::path& file) -> Result<void> {
            // Always a verified copy: the source is not ours to trust.
            return dest.add_file(file, *d.sha256_hex(), static_cast<std::uint64_t>(d.size),
                                 cache::Transfer::copy);
        };
        return import_image(src, tag, platform, limits);
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
}

} // namespace factory::oci
