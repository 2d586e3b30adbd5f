#include "factory/oci/layout.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "factory/oci/digest.hpp"
#include "factory/oci/json.hpp"
#include "factory/oci/json_fields.hpp"
#include "factory/util/files.hpp"

namespace factory::oci {

namespace {

constexpr const char* layout_file = "oci-layout";
constexpr const char* index_file = "index.json";
// index.json of a busy store lists every name:tag ever built; give it room.
constexpr JsonLimits index_limits{64u << 20, 64};

// Defined below, with the other rules of resolve.
Result<Descriptor> descend(const Descriptor& d, const Platform& platform, const BlobReader& read);
std::vector<Descriptor> stale_manifests(const Layout& layout, std::string_view ref);

// An exclusive flock on the layout directory itself, held for the object's lifetime: no lock
// file is left in a layout that others read (an `oci:DIR` output). flock locks belong to the
// open file description, so two threads of one process that each open the directory exclude
// each other too.
class IndexLock {
  public:
    explicit IndexLock(const fs::path& dir) {
        fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd_) throw Error("cannot open " + dir.string() + ": " + errno_string(errno));
        while (::flock(fd_.get(), LOCK_EX) != 0) {
            if (errno != EINTR)
                throw Error("cannot lock " + dir.string() + ": " + errno_string(errno));
        }
    }

  private:
    Fd fd_; // closing it releases the lock
};

std::string layout_json() {
    return R"({"imageLayoutVersion":"1.0.0"})";
}

void check_layout_file(const fs::path& dir) {
    auto path = dir / layout_file;
    auto bytes = read_file(path, 64 << 10);
    if (!bytes) throw Error(dir.string() + " is not an OCI image layout: " + bytes.error());
    auto j = parse_strict_json(*bytes);
    if (!j || !j->is_object())
        throw Error(path.string() + ": not a JSON object" + (j ? "" : ": " + j.error()));
    auto v = j->find("imageLayoutVersion");
    if (v == j->end() || !v->is_string())
        throw Error(path.string() + ": imageLayoutVersion is missing");
    if (v->get<std::string>() != layout_version)
        throw Error(path.string() + ": unsupported imageLayoutVersion " +
                    detail::quote(v->get<std::string>()) + " (factory reads 1.0.0)");
}

bool exists_nofollow(const fs::path& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

} // namespace

Layout::Layout(fs::path dir, fs::path tmp)
    : dir_(std::move(dir)), blobs_(dir_ / "blobs" / "sha256", std::move(tmp)) {}

Layout Layout::create(const fs::path& dir, Options options) {
    std::error_code ec;
    fs::create_directories(dir / "blobs" / "sha256", ec);
    if (ec) throw Error("cannot create OCI layout " + dir.string() + ": " + ec.message());
    if (!options.tmp_dir.empty()) {
        fs::create_directories(options.tmp_dir, ec);
        if (ec) throw Error("cannot create " + options.tmp_dir.string() + ": " + ec.message());
    }
    // Two creators racing both write the same bytes: harmless.
    if (!exists_nofollow(dir / layout_file)) write_file_atomic(dir / layout_file, layout_json());
    {
        // Under the index lock, so a concurrent set_ref's index is never replaced by an empty one.
        IndexLock lock(dir);
        if (!exists_nofollow(dir / index_file))
            write_file_atomic(dir / index_file, serialize(Index{}));
    }
    return open(dir, std::move(options));
}

Layout Layout::open(const fs::path& dir, Options options) {
    check_layout_file(dir);
    if (!exists_nofollow(dir / index_file))
        throw Error(dir.string() + " is not an OCI image layout: it has no index.json");
    auto tmp = options.tmp_dir.empty() ? dir / "blobs" / "sha256" : options.tmp_dir;
    return Layout(dir, std::move(tmp));
}

Index Layout::index() const {
    auto path = dir_ / index_file;
    auto bytes = read_file(path, index_limits.max_bytes);
    if (!bytes) throw Error(bytes.error());
    auto index = parse_index(*bytes, {}, index_limits);
    if (!index) throw Error(path.string() + ": " + index.error());
    return std::move(*index);
}

void Layout::write_index(const Index& index) {
    write_file_atomic(dir_ / index_file, serialize(index));
}

void Layout::set_ref(const std::string& ref_name, Descriptor desc) {
    if (ref_name.empty()) throw Error("an image reference name can't be empty");
    desc.annotations[annotation::ref_name] = ref_name;
    IndexLock lock(dir_);
    auto idx = index();
    std::vector<Descriptor> kept;
    bool placed = false;
    for (auto& d : idx.manifests) {
        if (d.ref_name() != ref_name) {
            kept.push_back(std::move(d));
        } else if (!placed) { // keep the position of the entry we replace
            kept.push_back(desc);
            placed = true;
        }
    }
    if (!placed) kept.push_back(std::move(desc));
    idx.manifests = std::move(kept);
    write_index(idx);
}

bool Layout::remove_ref(std::string_view ref_name) {
    IndexLock lock(dir_);
    auto idx = index();
    auto before = idx.manifests.size();
    std::erase_if(idx.manifests, [&](const Descriptor& d) { return d.ref_name() == ref_name; });
    if (idx.manifests.size() == before) return false;
    write_index(idx);
    return true;
}

std::vector<std::pair<std::string, Descriptor>> Layout::refs() const {
    std::vector<std::pair<std::string, Descriptor>> out;
    for (auto& d : index().manifests)
        if (auto name = d.ref_name(); !name.empty()) out.emplace_back(std::move(name), d);
    return out;
}

std::optional<Descriptor> Layout::resolve(std::string_view ref, const Platform& platform) const {
    auto idx = index();
    auto read = [this](const Descriptor& d) { return read_blob(d); };
    auto r = resolve_ref(idx, ref, platform, read);
    if (!r) throw Error(dir_.string() + ": " + r.error());
    if (*r) return std::move(*r);
    auto ambiguous = [&](const std::vector<std::string>& digests) {
        std::string list;
        for (const auto& c : digests)
            list += (list.empty() ? "" : ", ") + c;
        return Error("the digest prefix '" + std::string(ref) + "' is ambiguous in " +
                         dir_.string() + ": it matches " + list + " (give more digits)",
                     ExitCode::usage);
    };
    auto candidates = digest_prefix_matches(idx, ref);
    if (candidates.size() > 1) throw ambiguous(candidates);
    if (candidates.size() == 1) {
        r = resolve_ref(idx, candidates.front(), platform, read);
        if (!r) throw Error(dir_.string() + ": " + r.error());
        return std::move(*r);
    }
    auto stale = stale_manifests(*this, ref);
    if (stale.size() > 1) {
        std::vector<std::string> digests;
        for (const auto& d : stale)
            digests.push_back(d.digest);
        throw ambiguous(digests);
    }
    if (stale.empty()) return std::nullopt;
    if (!media_type::is_index(stale.front().media_type)) return stale.front();
    auto chosen = descend(stale.front(), platform, read);
    if (!chosen) throw Error(dir_.string() + ": " + chosen.error());
    return std::move(*chosen);
}

Result<std::string> Layout::read_blob(const Descriptor& d, std::uint64_t max_size) const {
    auto hex = d.sha256_hex();
    if (!hex) return Unexpected(hex.error());
    if (static_cast<std::uint64_t>(d.size) > max_size)
        return Unexpected("blob " + d.digest + " is " + std::to_string(d.size) +
                          " bytes, over the limit of " + std::to_string(max_size));
    if (!blobs_.has(*hex))
        return Unexpected("blob " + d.digest + " is missing from " + dir_.string());
    return blobs_.read_exact(*hex, static_cast<std::uint64_t>(d.size));
}

Result<Manifest> Layout::read_manifest(const Descriptor& d) const {
    auto bytes = read_blob(d);
    if (!bytes) return Unexpected(bytes.error());
    auto m = parse_manifest(*bytes, d.media_type);
    if (!m) return Unexpected(d.digest + ": " + m.error());
    return m;
}

Result<Index> Layout::read_index(const Descriptor& d) const {
    auto bytes = read_blob(d);
    if (!bytes) return Unexpected(bytes.error());
    auto i = parse_index(*bytes, d.media_type);
    if (!i) return Unexpected(d.digest + ": " + i.error());
    return i;
}

Result<ImageConfig> Layout::read_config(const Descriptor& d,
                                        std::optional<std::size_t> layers) const {
    auto bytes = read_blob(d);
    if (!bytes) return Unexpected(bytes.error());
    auto c = ImageConfig::parse(*bytes, layers);
    if (!c) return Unexpected(d.digest + ": " + c.error());
    return c;
}

Descriptor Layout::put_blob(std::string media_type, std::string_view bytes) {
    blobs_.put(bytes);
    return describe(std::move(media_type), bytes);
}

namespace {

// The walk of closure() and closure_tolerant(): with `problems` null, the first manifest or
// index that can't be read is the error; else it ends its branch (see the header).
Result<std::vector<Descriptor>> closure_walk(const Layout& layout, const Descriptor& root,
                                             std::vector<std::string>* problems) {
    std::vector<Descriptor> out;
    std::set<std::string> seen;
    // Unreadable: an error, or (tolerant) a problem only when the blob is there and sound.
    auto unreadable = [&](const Descriptor& d, const std::string& why) -> Result<void> {
        if (!problems) return Unexpected(why);
        auto hex = d.sha256_hex();
        if (hex && layout.blobs().has(*hex) && layout.blobs().verify(*hex))
            problems->push_back(why);
        return {};
    };
    std::function<Result<void>(const Descriptor&, int)> walk = [&](const Descriptor& d,
                                                                   int depth) -> Result<void> {
        if (depth > 4) {
            std::string why = "indexes nested deeper than 4 levels at " + d.digest;
            if (!problems) return Unexpected(why);
            problems->push_back(why);
            return {};
        }
        if (seen.count(d.digest)) return {};
        std::vector<Descriptor> children;
        if (media_type::is_index(d.media_type)) {
            auto idx = layout.read_index(d);
            if (idx)
                children = idx->manifests;
            else if (auto r = unreadable(d, idx.error()); !r)
                return r;
        } else if (media_type::is_manifest(d.media_type)) {
            auto m = layout.read_manifest(d);
            if (m) {
                children = m->layers;
                children.push_back(m->config);
            } else if (auto r = unreadable(d, m.error()); !r) {
                return r;
            }
        }
        for (const auto& c : children)
            if (auto r = walk(c, depth + 1); !r) return r;
        if (seen.insert(d.digest).second) out.push_back(d);
        return {};
    };
    if (auto r = walk(root, 0); !r) return Unexpected(r.error());
    return out;
}

} // namespace

Result<std::vector<Descriptor>> Layout::closure(const Descriptor& root) const {
    return closure_walk(*this, root, nullptr);
}

std::vector<Descriptor> Layout::closure_tolerant(const Descriptor& root,
                                                 std::vector<std::string>& problems) const {
    return *closure_walk(*this, root, &problems);
}

namespace {

const Descriptor* find_entry(const Index& index, std::string_view ref) {
    auto by = [&](auto pred) -> const Descriptor* {
        for (const auto& d : index.manifests)
            if (pred(d)) return &d;
        return nullptr;
    };
    if (ref.empty()) {
        if (index.manifests.size() == 1) return &index.manifests.front();
        return nullptr;
    }
    if (ref.starts_with("sha256:"))
        if (auto d = by([&](const Descriptor& x) { return x.digest == ref; })) return d;
    if (auto d = by([&](const Descriptor& x) { return x.ref_name() == ref; })) return d;
    if (auto d = by([&](const Descriptor& x) {
            auto it = x.annotations.find(annotation::containerd_image_name);
            return it != x.annotations.end() && it->second == ref;
        }))
        return d;
    if (ref.find(':') == std::string_view::npos) {
        auto latest = std::string(ref) + ":latest";
        if (auto d = by([&](const Descriptor& x) { return x.ref_name() == latest; })) return d;
    }
    return nullptr;
}

Result<Descriptor> descend(const Descriptor& d, const Platform& platform, const BlobReader& read) {
    auto bytes = read(d);
    if (!bytes) return Unexpected(bytes.error());
    auto nested = parse_index(*bytes, d.media_type);
    if (!nested) return Unexpected(d.digest + ": " + nested.error());
    auto chosen = select_platform(*nested, platform);
    if (!chosen) {
        std::string have;
        for (const auto& m : nested->manifests)
            if (m.platform) have += (have.empty() ? "" : ", ") + m.platform->str();
        return Unexpected("image index " + d.digest + " has no manifest for " + platform.str() +
                          " (it has: " + (have.empty() ? "none" : have) + ")");
    }
    if (!media_type::is_manifest(chosen->media_type))
        return Unexpected("image index " + d.digest + ": the entry for " + platform.str() +
                          " is a " + chosen->media_type + ", not an image manifest");
    return *chosen;
}

// The hex digits of a digest or digest prefix: "sha256:" optional, at least min_digest_prefix
// lower-case hex digits. Empty when ref is not one.
std::string_view prefix_hex(std::string_view ref) {
    std::string_view hex = ref.starts_with("sha256:") ? ref.substr(7) : ref;
    if (hex.size() < min_digest_prefix || hex.size() > 64 ||
        hex.find_first_not_of("0123456789abcdef") != std::string_view::npos)
        return {};
    return hex;
}

// The manifests and indexes among the layout's blobs whose digest starts with ref's hex (see
// prefix_hex): what an older build of a tag left once the tag moved on, until GC removes it.
// A prefix lists blobs/sha256 (only reached when no index entry matched); the other blobs
// with the prefix (layers, configs) are not candidates. Unreadable blobs are skipped.
std::vector<Descriptor> stale_manifests(const Layout& layout, std::string_view ref) {
    auto hex = prefix_hex(ref);
    if (hex.empty()) return {};
    std::vector<std::string> names;
    if (hex.size() == 64) {
        if (layout.blobs().has(hex)) names.emplace_back(hex);
    } else {
        std::error_code ec;
        for (fs::directory_iterator it(layout.blobs().dir(), ec), end; !ec && it != end;
             it.increment(ec))
            if (auto name = it->path().filename().string();
                name.size() == 64 && name.starts_with(hex))
                names.push_back(std::move(name));
        std::sort(names.begin(), names.end());
    }
    std::vector<Descriptor> out;
    for (const auto& name : names) {
        std::error_code ec;
        auto size = fs::file_size(layout.blobs().path(name), ec);
        if (ec || size > max_json_blob) continue;
        Descriptor d;
        d.digest = "sha256:" + name;
        d.size = static_cast<std::int64_t>(size);
        auto bytes = layout.read_blob(d);
        if (!bytes) continue;
        auto json = parse_strict_json(*bytes);
        if (!json || !json->is_object()) continue;
        auto type = json->value("mediaType", std::string());
        if (media_type::is_index(type) ? !parse_index(*bytes, type) : !parse_manifest(*bytes, type))
            continue; // a config, or not a document of this layout's kinds
        d.media_type = type.empty() ? std::string(media_type::manifest) : type;
        out.push_back(std::move(d));
    }
    return out;
}

} // namespace

std::vector<std::string> digest_prefix_matches(const Index& index, std::string_view ref) {
    auto hex = prefix_hex(ref);
    if (hex.empty()) return {};
    std::vector<std::string> out;
    for (const auto& d : index.manifests)
        if (d.digest.size() == 71 && d.digest.starts_with("sha256:") &&
            std::string_view(d.digest).substr(7).starts_with(hex) &&
            std::find(out.begin(), out.end(), d.digest) == out.end())
            out.push_back(d.digest);
    return out;
}

Result<std::optional<Descriptor>> resolve_ref(const Index& index, std::string_view ref,
                                              const Platform& platform, const BlobReader& read) {
    auto found = find_entry(index, ref);
    if (!found && ref.starts_with("sha256:")) {
        // A platform manifest inside a nested index, named by its digest.
        for (const auto& d : index.manifests) {
            if (!media_type::is_index(d.media_type)) continue;
            auto bytes = read(d);
            if (!bytes) return Unexpected(bytes.error());
            auto nested = parse_index(*bytes, d.media_type);
            if (!nested) return Unexpected(d.digest + ": " + nested.error());
            for (const auto& m : nested->manifests)
                if (m.digest == ref && media_type::is_manifest(m.media_type))
                    return std::optional<Descriptor>(m);
        }
    }
    if (!found) return std::optional<Descriptor>();
    const Descriptor& d = *found;
    if (media_type::is_index(d.media_type)) {
        auto chosen = descend(d, platform, read);
        if (!chosen) return Unexpected(chosen.error());
        return std::optional<Descriptor>(std::move(*chosen));
    }
    if (!media_type::is_manifest(d.media_type))
        return Unexpected("\"" + std::string(ref) + "\" names a " + d.media_type +
                          ", not an image manifest or index");
    return std::optional<Descriptor>(d);
}

} // namespace factory::oci
