#pragma once
// The stat cache (docs/cache.md "statcache/v1"): (absolute path, dev, ino, size, mtime, ctime,
// mode) → sha256 of the content, so that a no-op rebuild does not re-read unchanged files.
//
// Content decides, never mtime alone: an entry matches only if every stat field is equal, and
// ctime — which no user call can set — is one of them, so a rewrite that restores size and mtime
// is still caught. An entry is only recorded when the file's ctime is older than the moment its
// hashing started by more than racy_window (git's "racily clean" problem: a change made within
// the same timestamp tick as the hashed version would leave every stat field equal).
//
// get() and put() are thread-safe. save() merges with what another process may have saved in
// the meantime, under an flock on <file>.lock, and replaces the file atomically.

#include "factory/util/error.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unordered_map>
#include <utility>
#include <vector>

namespace factory::cache {

namespace fs = std::filesystem;

class StatCache {
  public:
    static constexpr std::size_t default_max_entries = std::size_t{1} << 20;
    static constexpr std::chrono::nanoseconds default_racy_window = std::chrono::seconds(2);

    // An empty cache that save() will write to `file` (normally <store>/statcache/v1).
    explicit StatCache(fs::path file, std::size_t max_entries = default_max_entries);
    StatCache(StatCache&& other) noexcept;
    StatCache& operator=(StatCache&&) = delete;

    // Loads `file`. A missing, truncated or corrupt file (its checksum says so) gives an empty
    // cache: it is only a cache. Never throws.
    static StatCache load(fs::path file, std::size_t max_entries = default_max_entries);

    // The recorded sha256 hex for path if every stat field matches st; nullopt otherwise.
    std::optional<std::string> get(const std::string& path, const struct stat& st) const;
    // Records path → sha256_hex for st, unless st's ctime is within racy_window of
    // hash_started_ns (default: now) — then it is a no-op.
    void put(const std::string& path, const struct stat& st, std::string_view sha256_hex,
             std::optional<std::int64_t> hash_started_ns = std::nullopt);

    // Writes the cache if anything changed: merges with the file as it is now (entries put by
    // this process win), keeps the max_entries most recently used, renames atomically. The
    // entries are written in walk order (bytes, '/' first), the order a copy step looks up.
    // Throws Error.
    void save();

    std::size_t size() const;
    const fs::path& file() const noexcept { return file_; }
    void set_racy_window(std::chrono::nanoseconds w) noexcept { racy_window_ = w; }
    std::chrono::nanoseconds racy_window() const noexcept { return racy_window_; }

    struct Entry {
        std::uint64_t dev = 0, ino = 0, size = 0;
        std::int64_t mtime_ns = 0, ctime_ns = 0;
        std::uint32_t mode = 0;
        std::int64_t used = 0; // unix seconds of the last use, for eviction
        std::array<unsigned char, 32> sha256{};
        bool dirty = false; // put by this process since the last save
    };
    using Map = std::unordered_map<std::string, Entry>;

  private:
    // A slot of the index over the loaded file: the path hash's high half, and the entry's
    // position in offsets_ + 1 (0: empty).
    struct Slot {
        std::uint32_t tag = 0;
        std::uint32_t index = 0;
    };
    void index_loaded();
    // The slot holding `path` (true), or the empty slot where it would go (false).
    std::pair<std::size_t, bool> find_slot(std::string_view path) const;
    std::optional<Entry> loaded_entry(std::string_view path) const;
    Map all_entries() const; // the loaded file with entries_ over it

    fs::path file_;
    std::size_t max_entries_;
    std::chrono::nanoseconds racy_window_ = default_racy_window;
    mutable std::mutex mutex_;
    // The file as loaded, kept whole and read in place (a no-op build reads every entry of
    // a big context and changes none): its bytes, each entry's offset, a hash index of paths.
    std::string loaded_;
    std::vector<std::size_t> offsets_;
    std::vector<Slot> slots_;
    std::size_t loaded_count_ = 0;   // distinct paths in loaded_
    bool sequential_ = true;         // no path twice in loaded_: the cursor may be trusted
    mutable std::size_t cursor_ = 0; // the entry after the last one found in loaded_
    // Entries put, or used again, by this process; they hide a loaded entry of the same path.
    mutable Map entries_;
    mutable bool changed_ = false;
};

// The file format, for tests: parse (nullopt if corrupt) and serialize.
std::optional<StatCache::Map> parse_stat_cache(std::string_view data);
std::string serialize_stat_cache(const StatCache::Map& entries);

// sha256 hex of a regular file's content through the cache: lstat; on a hit, done; otherwise the
// file is opened with O_NOFOLLOW, hashed, and fstat'ed before and after — if it changed while
// being hashed it is hashed again (3 tries, then an error: "<path> kept changing while it was
// hashed"). Errors for a missing file, a non-regular file, or an I/O error. Relative paths are
// made absolute (the cache is keyed by absolute path).
Result<std::string> hash_file_cached(StatCache& cache, const std::string& path);

} // namespace factory::cache
