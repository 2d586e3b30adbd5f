#pragma once
// Garbage collection of the store (docs/cache.md "GC"): `factory cache prune` and automatic
// pruning at the end of a build.
//
// What is kept: every blob the caller names as a root (everything reachable from index.json's
// refs — cache/ does not read OCI JSON, so the caller computes it) and every blob named by a kept
// action record. Records are evicted least recently used first (a record's mtime is its last use,
// bumped by ActionStore::lookup) until the store is under max_size and none is older than
// older_than; then every blob neither rooted nor named by a kept record is removed. Records that
// can't be read or that name a missing blob are always removed; so are stale temp files, and
// block maps whose blob is gone, removed, or not what they describe, and listings whose blob is
// gone or removed or that are damaged.
//
// prune() holds the store lock exclusively (StoreLock::maintenance), so it never runs while a
// build holds the store lock shared: a running build's blobs, records and temps are safe.

#include "cache/blob_store.hpp"
#include "cache/lock.hpp"
#include "factory/util/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace factory::cache {

namespace fs = std::filesystem;

// The hex digests of the blobs the refs need (manifests, configs, layers, nested indexes). It
// must throw if it can't compute the whole set (an unreadable manifest): pruning with a partial
// root set would delete what a ref needs.
using RootBlobs = std::function<std::vector<std::string>()>;

// "10G", "500M", "1.5GiB", "2TB", "123" (bytes). K/M/G/T and KB/MB/GB/TB are powers of 1000,
// KiB/MiB/GiB/TiB (or Ki/Mi/Gi/Ti) powers of 1024; case-insensitive. Error text names the input.
Result<std::uint64_t> parse_size(std::string_view text);
// "7d", "12h", "30m", "45s", "2w", "1d12h". Error text names the input.
Result<std::chrono::seconds> parse_duration(std::string_view text);

// ---- stale temporary files -------------------------------------------------------------------

struct SweepOptions {
    std::chrono::seconds max_age = std::chrono::hours(1);
    bool dry_run = false;
};

struct SweptTemp {
    fs::path path;
    std::uint64_t bytes = 0;
    std::string why; // "older than 1 h", "its writer (pid 123) is gone"
};

// Finds stale temps: every entry of tmp/, and ".tmp-*" files next to the store's files (the root,
// blobs/sha256/, actions/*/, steps/*/, statcache/). Stale means older than max_age (mtime), or
// named by AtomicFile/BlobStore::Writer with a pid (".tmp-…-<pid>-<n>-<hex>") of a process that
// no longer exists. Removes them unless dry_run. Call it only under StoreLock::maintenance (a
// running build's scratch directory may be older than max_age). Never throws.
std::vector<SweptTemp> sweep_temps(const fs::path& root, const SweepOptions& options = {});

// ---- prune -----------------------------------------------------------------------------------

struct PruneOptions {
    std::optional<std::uint64_t> max_size;          // bound on blob + record bytes
    std::optional<std::chrono::seconds> older_than; // evict records unused for longer
    bool dry_run = false;                           // report, change nothing
    std::chrono::seconds temp_max_age = std::chrono::hours(1);
    LockWait wait; // for the store lock; a timeout throws Error naming the store
};

struct PruneItem {
    std::string kind; // "record", "blob", "blocks" (a blob's block map), "listing" (a layer's),
                      // "temp", "quarantine"
    std::string name; // key, hex, or path relative to the root
    std::uint64_t bytes = 0;
    std::string reason; // "least recently used", "unused for 9 d", "unreachable", …
};

struct PruneReport {
    std::uint64_t records_removed = 0, blobs_removed = 0, temps_removed = 0;
    std::uint64_t block_maps_removed = 0, block_maps_kept = 0; // block_map.hpp
    std::uint64_t listings_removed = 0, listings_kept = 0;     // listings.hpp
    std::uint64_t snapshots_removed = 0; // counted by the caller (runtime::prune_snapshots)
    std::uint64_t records_kept = 0, blobs_kept = 0;
    std::uint64_t bytes_freed = 0; // everything removed, temps and quarantine included
    std::uint64_t bytes_kept = 0;  // blobs + records left
    std::vector<PruneItem> items;  // what was (or, in a dry run, would be) removed
};

// Takes the store lock (exclusive; shared for a dry run), then prunes. Throws Error (a busy store
// past options.wait.timeout, an I/O error, or root_blobs throwing — then nothing is removed).
PruneReport prune(const fs::path& root, BlobStore& blobs, const PruneOptions& options,
                  const RootBlobs& root_blobs);

// The same, for a caller that already holds `lock` (exclusive unless options.dry_run).
PruneReport prune_locked(const fs::path& root, BlobStore& blobs, const PruneOptions& options,
                         const RootBlobs& root_blobs, const StoreLock& lock);

// Automatic pruning at the end of a build. Cheap when the store is under `limit` (one read of
// stats.json). Otherwise, if no other build is running (the store lock is free), prunes down to
// 90% of limit and returns the report; nullopt if nothing was done. The caller must have released
// its own StoreLock::build first (an flock conflicts with another descriptor of the same process).
// Throws Error like prune().
std::optional<PruneReport> maybe_auto_prune(const fs::path& root, BlobStore& blobs,
                                            std::uint64_t limit, const RootBlobs& root_blobs);

// FACTORY_CACHE_MAX_SIZE parsed with parse_size; nullopt when unset or empty. Throws a usage Error
// for a malformed value.
std::optional<std::uint64_t> max_size_from_env();

} // namespace factory::cache
