#pragma once
// The registry form of the build cache (docs/cache.md "Remote cache"): one plain OCI image
// manifest per cache reference, whose config (media type cache_config_type) lists step records
// (key → action record, with the descriptors of the blobs it needs), cache mounts (name →
// layer) and the listings of layers (layer → the blob of its listing, cache/listings.hpp), and
// whose layers are all those blobs. Every registry accepts it, since it is an
// ordinary image manifest; nothing here talks to one (remote_cache.hpp does).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cache/action_store.hpp"
#include "cache/listings.hpp"
#include "factory/oci/descriptor.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/util/error.hpp"

namespace factory::builder {

inline constexpr std::string_view cache_config_type =
    "application/vnd.factory.cache.config.v1+json";
// A record's blob that is no layer (a base image's manifest or config).
inline constexpr std::string_view cache_blob_type = "application/vnd.factory.cache.blob.v1";
// A cache mount's content: a tar+gzip layer, applied into mounts/<name>/.
inline constexpr std::string_view cache_mount_type =
    "application/vnd.factory.cache.mount.v1.tar+gzip";
// A listing's blob is no bigger than a listing in the store may be.
inline constexpr std::uint64_t max_cache_listing_size = cache::max_listing_size;
// A config larger than this is refused before it is read.
inline constexpr std::uint64_t max_cache_config_size = 16u << 20;
// Entries kept per step when none is asked for (`keep=N`).
inline constexpr std::size_t default_cache_keep = 3;

// One step record and the descriptors of its blobs, in the order of record.blobs.
struct CacheEntry {
    cache::ActionRecord record; // inputs are not carried (they only explain misses locally)
    std::vector<oci::Descriptor> blobs;
};

// One cache mount: the store's directory name mounts/<name>/ (32 hex, derived from the
// mount's id) and the layer holding its files.
struct CacheMount {
    std::string name;
    std::string id; // the recipe's id or target, when known (for people)
    std::int64_t created = 0;
    oci::Descriptor layer;
};

// The listing of one of the entries' layers (docs/cache.md "Listings"): what a build reads to
// know a stage's files without downloading the layer. The blob holds the listing's body, as
// serialize_listing wrote it; its type is cache_blob_type.
struct CacheListing {
    std::string layer; // "sha256:…", one of the entries' blobs
    oci::Descriptor listing;
};

struct CacheIndex {
    std::vector<CacheEntry> entries;    // sorted by key
    std::vector<CacheMount> mounts;     // sorted by name
    std::vector<CacheListing> listings; // sorted by layer
};

// The config's bytes: {"mediaType", "version": 1, "entries": [{"record", "blobs"}],
// "mounts": [{"name", "id", "created", "layer"}], "listings": [{"layer", "listing"}]}, each
// list sorted. A config without "listings" (written before listings were shared) reads as one
// with none.
std::string encode_cache_config(const CacheIndex& index);

// Reads a config, refusing anything a writer of encode_cache_config would not write: another
// version or media type, a key that is not 64 hex, a record whose key differs from its entry's
// or whose blob list differs from the descriptors, a descriptor of a type outside
// allowed_blob_type, a mount name that is not 32 hex or a mount layer of another type, a
// listing of a blob no entry names, of one layer twice, or over max_cache_listing_size.
Result<CacheIndex> decode_cache_config(std::string_view bytes);

// True for the types a cache layer may have: image layers, manifests and configs (a base's),
// cache_blob_type and cache_mount_type.
bool allowed_blob_type(std::string_view media_type);

// The manifest naming config and every blob of the index once, sorted by digest.
oci::Manifest cache_manifest(const CacheIndex& index, const oci::Descriptor& config);

// Checks that a manifest read from a registry is a cache manifest (config of cache_config_type,
// at most max_cache_config_size) and, with its config decoded, that every blob the index names
// is one of its layers with the same size and type.
Result<void> check_cache_manifest(const oci::Manifest& manifest);
Result<void> check_cache_layers(const oci::Manifest& manifest, const CacheIndex& index);

// What is there merged with what is new: an entry of `incoming` replaces one of `existing` with
// the same key, a mount the one with the same name; then for each step (the record's step
// identity, or its key when it has none) the `keep` newest entries (by created, then key) stay,
// and the listings of their blobs (incoming's for a layer both have).
CacheIndex merge_cache(const CacheIndex& existing, const CacheIndex& incoming, std::size_t keep);

} // namespace factory::builder
