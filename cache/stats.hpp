#pragma once
// Store counters (stats.json) and usage (docs/cache.md "Stats").
//
// Each build adds its delta once, at its end, with add_stats(): read-modify-write under an flock
// on locks/stats.lock, written atomically, so concurrent builds never lose each other's counts
// and a killed build leaves the previous file. A missing or unreadable stats.json reads as zeros.
//
// stats.json also carries an estimate of the store's size (the last measured size plus the bytes
// written since), which makes maybe_auto_prune() (gc.hpp) a read of one small file.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace factory::cache {

namespace fs = std::filesystem;

struct Counters {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t bytes_written = 0;    // new blob bytes stored by misses
    std::uint64_t bytes_reused = 0;     // blob bytes a hit did not have to produce
    std::uint64_t remote_hits = 0;      // hits found in a --cache-from registry cache
    std::uint64_t bytes_downloaded = 0; // blob bytes fetched from one

    Counters& operator+=(const Counters& o);
    bool operator==(const Counters&) const = default;
};

struct Stats {
    Counters total;
    std::map<std::string, Counters> kinds; // "copy", "run", "base", "git", "deps" …
    std::int64_t since = 0; // unix seconds of the first count (or of the last zero_stats)

    // Count one step in both its kind and the total.
    void hit(const std::string& kind, std::uint64_t bytes_reused);
    void miss(const std::string& kind, std::uint64_t bytes_written);
    // A hit of hit() that came from a registry cache, with the bytes it downloaded (counted in
    // addition to hit()).
    void remote_hit(const std::string& kind, std::uint64_t bytes_downloaded);

    Stats& operator+=(const Stats& o);
};

// The counters as stored; zeros if stats.json is missing or unreadable. Never throws.
Stats read_stats(const fs::path& root);
// Adds delta to stats.json (and delta.total.bytes_written to the size estimate). Throws Error.
void add_stats(const fs::path& root, const Stats& delta);
// Resets the counters (not the size estimate). Throws Error.
void zero_stats(const fs::path& root);

// The size estimate: nullopt if never measured.
std::optional<std::uint64_t> estimated_store_size(const fs::path& root);
// Records a measured size (prune, verify and `cache stats` call it). Throws Error.
void record_store_size(const fs::path& root, std::uint64_t bytes);

struct Usage {
    std::uint64_t blobs = 0, blob_bytes = 0;
    std::uint64_t records = 0, record_bytes = 0; // actions/ (records and their inputs files)
    std::uint64_t snapshot_bytes = 0;            // snapshots/ (unpacked layers)
    std::uint64_t mount_bytes = 0;               // mounts/
    std::uint64_t git_bytes = 0;                 // git/ (bare mirrors)
    std::uint64_t shell_bytes = 0;               // homes/, volumes/, envs/ of `factory shell`
    std::uint64_t temp_bytes = 0;                // tmp/
    std::uint64_t quarantine_bytes = 0;          // quarantine/
    std::uint64_t other_bytes = 0;               // statcache/, steps/, blocks/, locks …

    // What `cache prune --max-size` bounds: blobs and records (mounts are managed apart).
    std::uint64_t prunable_bytes() const noexcept { return blob_bytes + record_bytes; }
    // The sum of every part above: each byte of the store is in exactly one.
    std::uint64_t total_bytes() const noexcept {
        return blob_bytes + record_bytes + snapshot_bytes + mount_bytes + git_bytes + shell_bytes +
               temp_bytes + quarantine_bytes + other_bytes;
    }
};

// Walks the store (lstat only, never following symlinks; a hard-linked file counts once).
// Never throws: unreadable parts count as empty.
Usage store_usage(const fs::path& root);

} // namespace factory::cache
