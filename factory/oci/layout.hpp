#pragma once
// An OCI image layout directory (image-spec image-layout.md): oci-layout, index.json,
// blobs/sha256/<hex>. The store is one; so are `oci:DIR` outputs.
//
// index.json is rewritten atomically (AtomicFile) under an flock on DIR itself (no lock file is
// left in the layout), so concurrent set_ref calls from threads or processes never lose each
// other's entries. Blobs read for use (manifests, indexes, configs) are always checked against
// their descriptor's size and digest.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/blob_store.hpp"
#include "factory/oci/descriptor.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/index.hpp"
#include "factory/oci/manifest.hpp"

namespace factory::oci {

namespace fs = std::filesystem;

inline constexpr std::string_view layout_version = "1.0.0";
// Manifests, indexes and configs larger than this are refused (containerd uses 4 MiB too).
inline constexpr std::uint64_t max_json_blob = 4u << 20;

class Layout {
  public:
    struct Options {
        // Where BlobStore::Writer stages temp files; same file system as DIR. Default:
        // DIR/blobs/sha256 (temp names start with ".tmp-", which readers ignore).
        fs::path tmp_dir;
    };

    // Creates DIR, blobs/sha256, oci-layout and an empty index.json as needed (existing ones are
    // kept), then opens it. Throws Error.
    static Layout create(const fs::path& dir, Options options = {});
    // Opens an existing layout: oci-layout must say imageLayoutVersion 1.0.0 and index.json must
    // exist. Reading needs no write access. Throws Error.
    static Layout open(const fs::path& dir, Options options = {});

    const fs::path& dir() const noexcept { return dir_; }
    cache::BlobStore& blobs() noexcept { return blobs_; }
    const cache::BlobStore& blobs() const noexcept { return blobs_; }

    // index.json, parsed strictly. Throws Error.
    Index index() const;

    // Adds desc to index.json with annotation org.opencontainers.image.ref.name = ref_name,
    // replacing every entry that had that name. Throws Error.
    void set_ref(const std::string& ref_name, Descriptor desc);
    // Removes the entries named ref_name; returns whether there were any. Throws Error.
    bool remove_ref(std::string_view ref_name);

    // Finds an image manifest:
    //   - ref "" and the index has exactly one entry: that one;
    //   - ref "sha256:…": the index entry with that digest, or a manifest inside a nested index;
    //   - otherwise the first entry whose ref.name is ref, then whose io.containerd.image.name is
    //     ref, then (ref without ':') whose ref.name is ref + ":latest";
    //   - otherwise, when ref is a digest prefix (digest_prefix_matches), the one manifest
    //     whose digest starts with it, as `docker inspect` takes a short id. Several: Error
    //     (ExitCode::usage) listing them;
    //   - otherwise a manifest blob of the layout that no entry names any more (an older build
    //     of a tag), by its digest or a unique prefix of it (the same rules; only when no entry
    //     matched, so a prefix that names an entry never becomes ambiguous with a stale build).
    // An entry that is an index is descended one level, choosing `platform` (select_platform).
    // nullopt: no such ref. Throws Error when a nested index can't be read or has no manifest for
    // the platform.
    std::optional<Descriptor> resolve(std::string_view ref,
                                      const Platform& platform = host_platform()) const;
    // (ref.name, descriptor) of every index entry that has a ref.name, in index order.
    std::vector<std::pair<std::string, Descriptor>> refs() const;

    // Reads a blob for use: at most max_size bytes; size and sha256 checked against d.
    Result<std::string> read_blob(const Descriptor& d,
                                  std::uint64_t max_size = max_json_blob) const;
    // read_blob + the strict readers; the document's mediaType must match d.media_type.
    Result<Manifest> read_manifest(const Descriptor& d) const;
    Result<Index> read_index(const Descriptor& d) const;
    Result<ImageConfig> read_config(const Descriptor& d,
                                    std::optional<std::size_t> layers = std::nullopt) const;

    // Stores bytes as a blob and returns its descriptor. Throws Error.
    Descriptor put_blob(std::string media_type, std::string_view bytes);

    // Every blob reachable from d (an index, a manifest or a plain blob), each once, referenced
    // blobs before their referrers (layers, config, manifest, …, d last). Manifests and indexes
    // are read and verified on the way; layers are not read. Nesting is capped at 4 levels.
    Result<std::vector<Descriptor>> closure(const Descriptor& d) const;
    // The same walk for a verifier: a manifest or index that can't be read ends only its own
    // branch. One missing or damaged is still listed (the verifier finds it gone or bad); one
    // that is there and sound but doesn't parse, and nesting past 4 levels, go to `problems`.
    std::vector<Descriptor> closure_tolerant(const Descriptor& d,
                                             std::vector<std::string>& problems) const;

  private:
    Layout(fs::path dir, fs::path tmp);
    void write_index(const Index& index);

    fs::path dir_;
    cache::BlobStore blobs_;
};

// Reads a blob's bytes for resolve_ref; must verify size and digest.
using BlobReader = std::function<Result<std::string>(const Descriptor&)>;

// Shortest digest prefix Layout::resolve accepts: the 12 hex digits `factory images` prints.
inline constexpr std::size_t min_digest_prefix = 12;

// The distinct digests of index entries that start with ref: "sha256:" and/or at least
// min_digest_prefix lower-case hex digits. Empty when ref is not such a prefix.
std::vector<std::string> digest_prefix_matches(const Index& index, std::string_view ref);

// The rules of Layout::resolve over any index (a layout's, an archive's). nullopt: not found.
Result<std::optional<Descriptor>> resolve_ref(const Index& index, std::string_view ref,
                                              const Platform& platform, const BlobReader& read);

} // namespace factory::oci
