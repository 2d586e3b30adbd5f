#include "cache/stats.hpp"

#include "cache/blob_store.hpp"
#include "cache/lock.hpp"
#include "factory/util/files.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/stat.h>
#include <utility>

namespace factory::cache {

namespace {

using json = nlohmann::json;

// stats.json, version 1 (docs/cache.md):
// {"version":1,"since":S,"total":C,"kinds":{"copy":C,…},
//  "size":{"measured":B,"measured_at":T,"written_since":W}}
// with C = {"hits":n,"misses":n,"bytes_written":n,"bytes_reused":n}.
struct File {
    Stats stats;
    std::optional<std::uint64_t> measured;
    std::int64_t measured_at = 0;
    std::uint64_t written_since = 0;
};

fs::path stats_path(const fs::path& root) {
    return root / "stats.json";
}
fs::path stats_lock(const fs::path& root) {
    return root / "locks" / "stats.lock";
}

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

json to_json(const Counters& c) {
    return {{"hits", c.hits},
            {"misses", c.misses},
            {"bytes_written", c.bytes_written},
            {"bytes_reused", c.bytes_reused},
            {"remote_hits", c.remote_hits},
            {"bytes_downloaded", c.bytes_downloaded}};
}

Counters counters_from(const json& j) {
    Counters c;
    c.hits = j.value("hits", std::uint64_t{0});
    c.misses = j.value("misses", std::uint64_t{0});
    c.bytes_written = j.value("bytes_written", std::uint64_t{0});
    c.bytes_reused = j.value("bytes_reused", std::uint64_t{0});
    c.remote_hits = j.value("remote_hits", std::uint64_t{0});
    c.bytes_downloaded = j.value("bytes_downloaded", std::uint64_t{0});
    return c;
}

File read_file_state(const fs::path& root) {
    File f;
    auto text = read_file(stats_path(root), 1 << 20);
    if (!text) return f;
    auto j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("version", 0) != 1) return f;
    try {
        f.stats.since = j.value("since", std::int64_t{0});
        if (j.contains("total")) f.stats.total = counters_from(j.at("total"));
        if (j.contains("kinds"))
            for (const auto& [kind, c] : j.at("kinds").items())
                f.stats.kinds[kind] = counters_from(c);
        if (j.contains("size")) {
            const auto& s = j.at("size");
            if (s.contains("measured")) f.measured = s.at("measured").get<std::uint64_t>();
            f.measured_at = s.value("measured_at", std::int64_t{0});
            f.written_since = s.value("written_since", std::uint64_t{0});
        }
    } catch (const json::exception&) {
        return File{}; // wrong types: treat as no stats rather than fail a build over counters
    }
    return f;
}

void write_file_state(const fs::path& root, const File& f) {
    json kinds = json::object();
    for (const auto& [kind, c] : f.stats.kinds)
        kinds[kind] = to_json(c);
    json size = json::object();
    if (f.measured) {
        size["measured"] = *f.measured;
        size["measured_at"] = f.measured_at;
    }
    size["written_since"] = f.written_since;
    json j = {{"version", 1},
              {"since", f.stats.since},
              {"total", to_json(f.stats.total)},
              {"kinds", kinds},
              {"size", size}};
    write_file_atomic(stats_path(root), j.dump(2) + "\n");
}

// Read-modify-write of stats.json under locks/stats.lock.
template <class F> void update(const fs::path& root, F&& change) {
    auto lock = FileLock::exclusive(stats_lock(root));
    auto f = read_file_state(root);
    change(f);
    write_file_state(root, f);
}

struct Walker {
    std::set<std::pair<dev_t, ino_t>> seen;

    // Bytes of regular files below dir (and dir's own entries' sizes for symlinks). Mount
    // points are not entered: a running shell environment's merged overlay (envs/<id>/fs) shows
    // snapshots that are counted where they are.
    std::uint64_t bytes(const fs::path& dir) {
        std::uint64_t total = 0;
        struct stat top {};
        if (::lstat(dir.c_str(), &top) != 0) return 0;
        std::error_code ec;
        for (fs::recursive_directory_iterator
                 it(dir, fs::directory_options::skip_permission_denied, ec),
             end;
             !ec && it != end; it.increment(ec)) {
            struct stat st {};
            if (::lstat(it->path().c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
                st.st_dev != top.st_dev) {
                it.disable_recursion_pending();
                continue;
            }
            total += size_of(it->path());
        }
        return total;
    }

    std::uint64_t size_of(const fs::path& p) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) return 0;
        if (st.st_nlink > 1 && !seen.insert({st.st_dev, st.st_ino}).second) return 0;
        return static_cast<std::uint64_t>(st.st_size);
    }
};

} // namespace

Counters& Counters::operator+=(const Counters& o) {
    hits += o.hits;
    misses += o.misses;
    bytes_written += o.bytes_written;
    bytes_reused += o.bytes_reused;
    remote_hits += o.remote_hits;
    bytes_downloaded += o.bytes_downloaded;
    return *this;
}

void Stats::hit(const std::string& kind, std::uint64_t bytes_reused) {
    Counters c;
    c.hits = 1;
    c.bytes_reused = bytes_reused;
    total += c;
    kinds[kind] += c;
}

void Stats::remote_hit(const std::string& kind, std::uint64_t bytes_downloaded) {
    Counters c;
    c.remote_hits = 1;
    c.bytes_downloaded = bytes_downloaded;
    total += c;
    kinds[kind] += c;
}

void Stats::miss(const std::string& kind, std::uint64_t bytes_written) {
    Counters c;
    c.misses = 1;
    c.bytes_written = bytes_written;
    total += c;
    kinds[kind] += c;
}

Stats& Stats::operator+=(const Stats& o) {
    total += o.total;
    for (const auto& [kind, c] : o.kinds)
        kinds[kind] += c;
    if (since == 0 || (o.since != 0 && o.since < since)) since = o.since;
    return *this;
}

Stats read_stats(const fs::path& root) {
    return read_file_state(root).stats;
}

void add_stats(const fs::path& root, const Stats& delta) {
    update(root, [&](File& f) {
        if (f.stats.since == 0) f.stats.since = now_seconds();
        auto since = f.stats.since;
        f.stats += delta;
        f.stats.since = since;
        f.written_since += delta.total.bytes_written;
    });
}

void zero_stats(const fs::path& root) {
    update(root, [](File& f) {
        f.stats = Stats{};
        f.stats.since = now_seconds();
    });
}

std::optional<std::uint64_t> estimated_store_size(const fs::path& root) {
    auto f = read_file_state(root);
    if (!f.measured) return std::nullopt;
    return *f.measured + f.written_since;
}

void record_store_size(const fs::path& root, std::uint64_t bytes) {
    update(root, [&](File& f) {
        f.measured = bytes;
        f.measured_at = now_seconds();
        f.written_since = 0;
    });
}

Usage store_usage(const fs::path& root) {
    Usage u;
    Walker w;
    std::error_code ec;
    auto blob_dir = root / "blobs" / "sha256";
    for (fs::directory_iterator it(blob_dir, ec), end; !ec && it != end; it.increment(ec)) {
        auto n = w.size_of(it->path());
        if (is_sha256_hex(it->path().filename().string())) {
            ++u.blobs;
            u.blob_bytes += n;
        } else {
            u.temp_bytes += n; // .tmp-* of a writer staging beside the blobs
        }
    }
    for (fs::recursive_directory_iterator it(root / "actions", ec), end; !ec && it != end;
         it.increment(ec)) {
        auto name = it->path().filename().string();
        auto n = w.size_of(it->path());
        if (name.starts_with(temp_prefix)) {
            u.temp_bytes += n;
            continue;
        }
        u.record_bytes += n;
        if (name.size() == 64 + 5 && name.ends_with(".json")) ++u.records;
    }
    u.snapshot_bytes = w.bytes(root / "snapshots");
    u.mount_bytes = w.bytes(root / "mounts");
    u.git_bytes = w.bytes(root / "git");
    for (const char* d : {"homes", "volumes", "envs"})
        u.shell_bytes += w.bytes(root / d);
    u.temp_bytes += w.bytes(root / "tmp");
    u.quarantine_bytes = w.bytes(root / "quarantine");
    static const std::set<std::string> counted{"blobs", "actions",   "snapshots", "mounts",
                                               "git",   "homes",     "volumes",   "envs",
                                               "tmp",   "quarantine"};
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (counted.count(name)) continue;
        u.other_bytes += it->is_directory(ec) && !it->is_symlink(ec) ? w.bytes(it->path())
                                                                     : w.size_of(it->path());
    }
    return u;
}

} // namespace factory::cache
