#pragma once
// The build cache shared through a registry (docs/cache.md "Remote cache"): `--cache-from`
// reads cache manifests (cache_format.hpp) before a build, two small requests each, and hands
// the executor the records of keys it misses locally; their blobs are downloaded, verified,
// only when a step needs them. `--cache-to` (and `factory cache export`) writes the records of
// a build, and with mode=max its cache mounts, merged with what the reference holds.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "factory/builder/cache_format.hpp"
#include "factory/oci/layout.hpp"
#include "factory/registry/client.hpp"
#include "factory/registry/reference.hpp"

namespace factory::builder {

enum class CacheMode {
    min, // the records of the output stage's steps
    max, // every step of every stage, and the cache mounts of RUN and deps steps
};

struct CacheRef {
    registry::Reference ref;
    CacheMode mode = CacheMode::max;
    std::size_t keep = default_cache_keep; // entries kept per step on export
    std::string text;                      // as given
};

// What a cache reference is given for: writing takes the options `mode=` and `keep=`, reading
// (--cache-from, cache import) none.
enum class CacheUse { read, write };

// "docker://HOST/REPO[:TAG][,mode=min|max][,keep=N]" (for CacheUse::read without the options).
// `option` names the flag in errors ("--cache-to"). Throws Error (ExitCode::usage).
CacheRef parse_cache_ref(const std::string& text, const std::string& option, CacheUse use);

// An entry found in a registry cache, with where it came from.
struct RemoteEntry {
    CacheEntry entry;
    std::size_t source = 0;
};

// The caches a build reads from. Thread-safe once loaded.
class RemoteCache {
  public:
    explicit RemoteCache(registry::ClientOptions options);
    ~RemoteCache();

    // Reads each reference's manifest and config, in order. A reference that can't be read
    // (registry down, an error status, not a factory cache, hostile content) is left out with
    // one warning line on stderr: this never throws for what a registry answers.
    void load(const std::vector<CacheRef>& refs);
    // The same for one reference, throwing Error instead of warning (`factory cache import`),
    // also for a tag the registry does not have: asking for it by name, a typo must not pass
    // for an empty cache.
    void load_or_throw(const CacheRef& ref);

    // The first source's entry for key.
    std::optional<RemoteEntry> find(const std::string& key) const;
    // The first source's mount named `name` (mounts/<name>/).
    std::optional<std::pair<CacheMount, std::size_t>> find_mount(const std::string& name) const;
    // Every entry and mount of every source (the first source's wins).
    std::vector<RemoteEntry> entries() const;
    std::vector<std::pair<CacheMount, std::size_t>> mounts() const;

    // The body of the listing of `layer` ("sha256:…") in the first source that has one, as
    // serialize_listing wrote it (not parsed here), checked against its digest and size: from
    // `store` when it holds that blob, else downloaded once per command and kept there as a
    // blob (it is used only while a cache names it); `downloaded` counts the bytes fetched by
    // this call. nullopt when no source has one. Throws Error when the download fails.
    std::optional<std::string> listing(const std::string& layer, cache::BlobStore& store,
                                       std::uint64_t& downloaded);

    // Downloads the blobs the store lacks, each verified against its digest and size; returns
    // the bytes downloaded. Throws Error.
    std::uint64_t fetch(std::size_t source, const std::vector<oci::Descriptor>& blobs,
                        cache::BlobStore& store, Progress* progress = nullptr);
    // Fills the empty or absent directory `dir` from the mount's layer (applied into a temp
    // directory beside it, then renamed into place); returns the bytes downloaded, 0 when the
    // directory is not empty. Throws Error.
    std::uint64_t restore_mount(std::size_t source, const CacheMount& mount,
                                const std::filesystem::path& dir, oci::Layout& store);

    const CacheRef& ref(std::size_t source) const;

  private:
    struct Source;
    // required: a tag the registry doesn't know is an error, not an empty cache.
    Source load_source(const CacheRef& ref, bool required);
    registry::Client& client_for(const std::string& host);

    registry::ClientOptions options_;
    std::vector<std::unique_ptr<Source>> sources_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<registry::Client>> clients_;
    std::map<std::string, std::optional<std::string>> listings_; // by layer, once fetched
};

// Reads the cache at ref: nullopt when the tag does not exist. Throws Error for any other
// failure, and for content that is not a sound factory cache.
std::optional<CacheIndex> read_cache(registry::Client& client, const CacheRef& ref);

// What an export sends.
struct CacheExportItems {
    std::vector<std::string> keys; // step records of the local store
    // Cache mounts (mode=max): the directory name under mounts/ and the recipe's id.
    std::vector<std::pair<std::string, std::string>> mounts;
};

struct CacheExportReport {
    std::size_t entries = 0;  // in the cache after the merge
    std::size_t exported = 0; // of those, from this export
    std::size_t mounts = 0;
    std::size_t blobs_uploaded = 0;
    std::string digest; // the cache manifest's
};

// Reads what ref holds, merges the local records of `items` into it (merge_cache, ref.keep per
// step) with the store's listings of their blobs, uploads the blobs the registry lacks, then
// the config and the manifest. Records whose blobs are gone from the store are left out.
// Throws Error.
CacheExportReport export_cache(const CacheRef& ref, oci::Layout& store,
                               const CacheExportItems& items,
                               const registry::ClientOptions& options, Progress* progress);

// The directory name of a cache mount's id under mounts/ (run_step.hpp cache_mount_dir).
std::string cache_mount_name(const std::string& id);

} // namespace factory::builder
