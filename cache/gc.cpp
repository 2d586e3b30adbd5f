#include "cache/gc.hpp"

#include "cache/action_store.hpp"
#include "cache/block_map.hpp"
#include "cache/listings.hpp"
#include "cache/stats.hpp"
#include "factory/util/files.hpp"
#include "factory/util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

namespace factory::cache {

namespace {

using Clock = std::chrono::system_clock;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string age_text(std::int64_t seconds) {
    if (seconds >= 2 * 86400) return std::to_string(seconds / 86400) + " d";
    if (seconds >= 2 * 3600) return std::to_string(seconds / 3600) + " h";
    if (seconds >= 120) return std::to_string(seconds / 60) + " min";
    return std::to_string(seconds) + " s";
}

// ---- temps
// ---------------------------------------------------------------------------------------

// The pid in a name made by unique_suffix(): "…-<pid>-<counter>-<8 hex>"; 0 if there is none.
pid_t pid_in_temp_name(std::string_view name) {
    auto take_last = [&](std::string_view& s) {
        auto dash = s.rfind('-');
        if (dash == std::string_view::npos) return std::string_view{};
        auto part = s.substr(dash + 1);
        s = s.substr(0, dash);
        return part;
    };
    auto rest = name;
    auto rand = take_last(rest);
    auto counter = take_last(rest);
    auto pid = take_last(rest);
    if (rand.size() != 8 || !std::all_of(rand.begin(), rand.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        }))
        return 0;
    if (!all_digits(counter) || !all_digits(pid) || pid.size() > 9) return 0;
    return static_cast<pid_t>(std::stol(std::string(pid)));
}

bool process_gone(pid_t pid) {
    if (pid <= 0 || pid == ::getpid()) return false;
    return ::kill(pid, 0) != 0 && errno == ESRCH;
}

std::uint64_t tree_bytes(const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
    std::uint64_t total = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec),
         end;
         !ec && it != end; it.increment(ec)) {
        struct stat est {};
        if (::lstat(it->path().c_str(), &est) == 0 && !S_ISDIR(est.st_mode))
            total += static_cast<std::uint64_t>(est.st_size);
    }
    return total;
}

struct TempSweeper {
    const SweepOptions& options;
    std::int64_t now = Clock::to_time_t(Clock::now());
    std::vector<SweptTemp> out;

    void consider(const fs::path& p) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0) return;
        std::string why;
        auto age = now - static_cast<std::int64_t>(st.st_mtim.tv_sec);
        if (age > options.max_age.count()) {
            why = "older than " + age_text(options.max_age.count());
        } else if (auto pid = pid_in_temp_name(p.filename().string()); process_gone(pid)) {
            why = "its writer (pid " + std::to_string(pid) + ") is gone";
        } else {
            return;
        }
        // A RUN step's root file system stays mounted when its factory was killed: unmount it
        // first, and never remove through a mount that stays.
        if (!options.dry_run && S_ISDIR(st.st_mode)) {
            std::error_code ec;
            auto real = fs::canonical(p, ec);
            if (ec) return;
            for (const auto& m : mounts_under(real))
                ::umount2(m.c_str(), MNT_DETACH);
            if (!mounts_under(real).empty()) return;
        }
        SweptTemp t{p, tree_bytes(p), why};
        if (!options.dry_run) {
            std::error_code ec;
            fs::remove_all(p, ec);
            if (ec) return; // someone else removed it, or we may not: not ours to report
        }
        out.push_back(std::move(t));
    }

    // Entries of dir named .tmp-*; with every_entry, all of them (tmp/ holds nothing else).
    void scan(const fs::path& dir, bool every_entry) {
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            if (every_entry || it->path().filename().string().starts_with(temp_prefix))
                consider(it->path());
        }
    }

    void scan_shards(const fs::path& dir) {
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
            if (it->is_directory(ec) && !it->is_symlink(ec)) scan(it->path(), false);
    }
};

// ---- prune
// ---------------------------------------------------------------------------------------

struct Candidate {
    std::string key;
    std::uint64_t bytes = 0;
    std::int64_t last_used = 0; // ns
    std::vector<std::string> blobs;
};

std::unordered_map<std::string, std::uint64_t> blob_inventory(const BlobStore& blobs) {
    std::unordered_map<std::string, std::uint64_t> out;
    std::error_code ec;
    for (fs::directory_iterator it(blobs.dir(), ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (!is_sha256_hex(name)) continue;
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
            out.emplace(std::move(name), static_cast<std::uint64_t>(st.st_size));
    }
    return out;
}

std::unordered_set<std::string> root_set(const RootBlobs& root_blobs) {
    std::unordered_set<std::string> roots;
    if (!root_blobs) return roots;
    for (auto& hex : root_blobs()) {
        if (!is_sha256_hex(hex))
            throw Error("cannot prune: the refs name an invalid blob digest \"" +
                        hex.substr(0, 80) + "\"");
        roots.insert(std::move(hex));
    }
    return roots;
}

class Pruner {
  public:
    Pruner(const fs::path& root, BlobStore& blobs, const PruneOptions& options)
        : root_(root), blobs_(blobs), actions_(root, blobs), options_(options) {}

    PruneReport run(const RootBlobs& root_blobs) {
        // Roots first: if the caller can't compute them, nothing is touched.
        roots_ = root_set(root_blobs);
        inventory_ = blob_inventory(blobs_);
        load_records();
        evict_old();
        evict_to_size();
        collect_garbage_blobs();
        collect_block_maps();
        collect_listings();
        remove_all();
        finish();
        return std::move(report_);
    }

  private:
    void drop_record(const Candidate& c, std::string reason) {
        report_.items.push_back({"record", c.key, c.bytes, std::move(reason)});
        report_.records_removed++;
        report_.bytes_freed += c.bytes;
        removed_keys_.push_back(c.key);
    }

    void load_records() {
        for (auto& file : actions_.list()) {
            Candidate c{file.key, file.bytes, file.last_used, {}};
            auto record = actions_.read(file.key, WithInputs::no);
            if (!record) {
                drop_record(c, "unreadable: " + record.error());
                continue;
            }
            std::sort(record->blobs.begin(), record->blobs.end());
            record->blobs.erase(std::unique(record->blobs.begin(), record->blobs.end()),
                                record->blobs.end());
            auto missing = std::find_if(record->blobs.begin(), record->blobs.end(),
                                        [&](const auto& h) { return !inventory_.count(h); });
            if (missing != record->blobs.end()) {
                drop_record(c, "names a missing blob sha256:" + *missing);
                continue;
            }
            c.blobs = std::move(record->blobs);
            for (const auto& h : c.blobs)
                refs_[h]++;
            kept_.push_back(std::move(c));
        }
        // Least recently used first; the key breaks ties so a dry run and the real run agree.
        std::sort(kept_.begin(), kept_.end(), [](const Candidate& a, const Candidate& b) {
            return a.last_used != b.last_used ? a.last_used < b.last_used : a.key < b.key;
        });
    }

    // Unreference c's blobs; returns the bytes that become garbage.
    std::uint64_t release(const Candidate& c) {
        std::uint64_t freed = 0;
        for (const auto& h : c.blobs)
            if (--refs_[h] == 0 && !roots_.count(h)) freed += inventory_[h];
        return freed;
    }

    void evict_old() {
        if (!options_.older_than) return;
        auto now_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
                .count();
        auto limit =
            std::chrono::duration_cast<std::chrono::nanoseconds>(*options_.older_than).count();
        std::vector<Candidate> still;
        for (auto& c : kept_) {
            if (now_ns - c.last_used > limit) {
                release(c);
                drop_record(c, "unused for " + age_text((now_ns - c.last_used) / 1'000'000'000));
            } else {
                still.push_back(std::move(c));
            }
        }
        kept_ = std::move(still);
    }

    std::uint64_t kept_bytes() const {
        std::uint64_t total = 0;
        for (const auto& c : kept_)
            total += c.bytes;
        for (const auto& [hex, size] : inventory_) {
            auto it = refs_.find(hex);
            if (roots_.count(hex) || (it != refs_.end() && it->second > 0)) total += size;
        }
        return total;
    }

    void evict_to_size() {
        if (!options_.max_size) return;
        auto size = kept_bytes();
        std::size_t evicted = 0;
        while (size > *options_.max_size && evicted < kept_.size()) {
            const auto& c = kept_[evicted++];
            size -= c.bytes + release(c);
            drop_record(c, "least recently used");
        }
        kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(evicted));
    }

    void collect_garbage_blobs() {
        std::vector<std::pair<std::string, std::uint64_t>> garbage;
        for (const auto& [hex, size] : inventory_) {
            auto it = refs_.find(hex);
            bool referenced = it != refs_.end() && it->second > 0;
            if (roots_.count(hex) || referenced) {
                report_.blobs_kept++;
                report_.bytes_kept += size;
            } else {
                garbage.emplace_back(hex, size);
            }
        }
        std::sort(garbage.begin(), garbage.end());
        for (auto& [hex, size] : garbage) {
            report_.items.push_back({"blob", hex, size, "unreachable"});
            report_.blobs_removed++;
            report_.bytes_freed += size;
            garbage_.push_back(hex);
        }
        for (const auto& c : kept_)
            report_.bytes_kept += c.bytes;
        report_.records_kept = kept_.size();
    }

    // A block map lives as long as its blob and is only useful while it tiles it.
    void collect_block_maps() {
        BlockMaps maps(root_);
        std::unordered_set<std::string> removed(garbage_.begin(), garbage_.end());
        auto hexes = maps.list();
        std::sort(hexes.begin(), hexes.end());
        for (const auto& hex : hexes) {
            auto bytes = tree_bytes(maps.path(hex));
            auto blob = inventory_.find(hex);
            std::string why;
            if (blob == inventory_.end())
                why = "its blob is gone";
            else if (removed.count(hex))
                why = "its blob is removed";
            else if (auto map = maps.read(hex); !map)
                why = "unreadable";
            else if (!check_block_tiling(*map, blob->second))
                why = "does not match its blob";
            if (why.empty()) {
                report_.block_maps_kept++;
                continue;
            }
            report_.items.push_back({"blocks", hex, bytes, std::move(why)});
            report_.block_maps_removed++;
            report_.bytes_freed += bytes;
            garbage_maps_.push_back(hex);
        }
    }

    // A listing lives as long as its blob (listings.hpp).
    void collect_listings() {
        Listings listings(root_);
        std::unordered_set<std::string> removed(garbage_.begin(), garbage_.end());
        auto hexes = listings.list();
        std::sort(hexes.begin(), hexes.end());
        for (const auto& hex : hexes) {
            std::string why;
            if (!inventory_.count(hex))
                why = "its blob is gone";
            else if (removed.count(hex))
                why = "its blob is removed";
            else if (!listings.read(hex))
                why = "unreadable";
            if (why.empty()) {
                report_.listings_kept++;
                continue;
            }
            auto bytes = tree_bytes(listings.path(hex));
            report_.items.push_back({"listing", hex, bytes, std::move(why)});
            report_.listings_removed++;
            report_.bytes_freed += bytes;
            garbage_listings_.push_back(hex);
        }
    }

    void remove_all() {
        if (options_.dry_run) {
            SweepOptions so{options_.temp_max_age, true};
            add_temps(sweep_temps(root_, so));
            return;
        }
        // Records before blobs: a record never names a blob that is gone.
        for (const auto& key : removed_keys_)
            actions_.remove(key);
        // Maps and listings before their blobs: neither ever names a blob that is gone.
        BlockMaps maps(root_);
        for (const auto& hex : garbage_maps_)
            maps.remove(hex);
        Listings listings(root_);
        for (const auto& hex : garbage_listings_)
            listings.remove(hex);
        for (const auto& hex : garbage_)
            if (::unlink(blobs_.path(hex).c_str()) != 0 && errno != ENOENT)
                throw Error("cannot remove " + blobs_.path(hex).string() + ": " +
                            errno_string(errno));
        remove_dangling_step_pointers();
        add_temps(sweep_temps(root_, {options_.temp_max_age, false}));
        empty_quarantine();
        remove_key_locks();
    }

    void add_temps(std::vector<SweptTemp> temps) {
        for (auto& t : temps) {
            report_.items.push_back(
                {"temp", fs::relative(t.path, root_).string(), t.bytes, std::move(t.why)});
            report_.temps_removed++;
            report_.bytes_freed += t.bytes;
        }
    }

    void remove_dangling_step_pointers() {
        std::error_code ec;
        for (fs::recursive_directory_iterator it(root_ / "steps", ec), end; !ec && it != end;
             it.increment(ec)) {
            auto name = it->path().filename().string();
            if (!is_sha256_hex(name)) continue;
            auto text = read_file(it->path(), 1024);
            std::string key = text ? text->substr(0, 64) : "";
            struct stat st {};
            if (!is_sha256_hex(key) || ::lstat(actions_.record_path(key).c_str(), &st) != 0)
                ::unlink(it->path().c_str());
        }
    }

    // Corrupt blobs that verify moved aside: evidence until the next prune.
    void empty_quarantine() {
        std::error_code ec;
        for (fs::directory_iterator it(root_ / "quarantine", ec), end; !ec && it != end;
             it.increment(ec)) {
            auto bytes = tree_bytes(it->path());
            std::error_code rec;
            fs::remove_all(it->path(), rec);
            if (rec) continue;
            report_.items.push_back({"quarantine", fs::relative(it->path(), root_).string(), bytes,
                                     "quarantined by verify"});
            report_.bytes_freed += bytes;
        }
    }

    // Per-key lock files: with the store lock exclusive nobody holds or waits for one.
    void remove_key_locks() {
        std::error_code ec;
        for (fs::directory_iterator it(root_ / "locks", ec), end; !ec && it != end;
             it.increment(ec)) {
            if (it->path().filename().string().size() != 2) continue;
            std::error_code rec;
            fs::remove_all(it->path(), rec);
        }
    }

    void finish() {
        if (!options_.dry_run) record_store_size(root_, report_.bytes_kept);
    }

    fs::path root_;
    BlobStore& blobs_;
    ActionStore actions_;
    const PruneOptions& options_;
    std::unordered_set<std::string> roots_;
    std::unordered_map<std::string, std::uint64_t> inventory_;
    std::unordered_map<std::string, std::uint64_t> refs_; // blob → kept records naming it
    std::vector<Candidate> kept_;
    std::vector<std::string> removed_keys_, garbage_, garbage_maps_, garbage_listings_;
    PruneReport report_;
};

} // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
    auto bad = [&](const std::string& why) {
        return Unexpected("invalid size \"" + std::string(text) + "\": " + why +
                          " (like 10G, 500M, 1.5GiB)");
    };
    std::size_t i = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
        ++i;
    auto whole = text.substr(0, i);
    std::string_view frac;
    if (i < text.size() && text[i] == '.') {
        auto start = ++i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9')
            ++i;
        frac = text.substr(start, i - start);
        if (frac.empty()) return bad("expected digits after '.'");
    }
    if (whole.empty()) return bad("expected a number");
    auto unit_text = text.substr(i);
    while (!unit_text.empty() && unit_text.front() == ' ')
        unit_text.remove_prefix(1);
    static const std::map<std::string, long double> units = {{"", 1},
                                                             {"b", 1},
                                                             {"k", 1e3},
                                                             {"kb", 1e3},
                                                             {"m", 1e6},
                                                             {"mb", 1e6},
                                                             {"g", 1e9},
                                                             {"gb", 1e9},
                                                             {"t", 1e12},
                                                             {"tb", 1e12},
                                                             {"ki", 1024.0L},
                                                             {"kib", 1024.0L},
                                                             {"mi", 1048576.0L},
                                                             {"mib", 1048576.0L},
                                                             {"gi", 1073741824.0L},
                                                             {"gib", 1073741824.0L},
                                                             {"ti", 1099511627776.0L},
                                                             {"tib", 1099511627776.0L}};
    auto unit = units.find(lower(unit_text));
    if (unit == units.end()) return bad("unknown unit \"" + std::string(unit_text) + "\"");
    if (whole.size() > 20) return bad("too large");
    long double value = std::strtold(std::string(text.substr(0, i)).c_str(), nullptr);
    value *= unit->second;
    if (!(value < 18446744073709551616.0L)) return bad("too large");
    return static_cast<std::uint64_t>(std::floor(value));
}

Result<std::chrono::seconds> parse_duration(std::string_view text) {
    auto bad = [&](const std::string& why) {
        return Unexpected("invalid duration \"" + std::string(text) + "\": " + why +
                          " (like 7d, 12h, 30m, 1d12h; units s, m, h, d, w)");
    };
    if (text.empty()) return bad("empty");
    std::uint64_t total = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t start = i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9')
            ++i;
        if (i == start) return bad("expected a number");
        if (i - start > 12) return bad("too large");
        auto n = std::stoull(std::string(text.substr(start, i - start)));
        if (i == text.size()) return bad("missing a unit after " + std::to_string(n));
        std::uint64_t unit = 0;
        switch (text[i]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case 'w':
            unit = 7 * 86400;
            break;
        default:
            return bad(std::string("unknown unit '") + text[i] + "'");
        }
        ++i;
        total += n * unit;
        if (total > (std::uint64_t{1} << 40)) return bad("too large");
    }
    return std::chrono::seconds(static_cast<std::int64_t>(total));
}

std::vector<SweptTemp> sweep_temps(const fs::path& root, const SweepOptions& options) {
    TempSweeper s{options, Clock::to_time_t(Clock::now()), {}};
    s.scan(root / "tmp", true);
    s.scan(root, false);
    s.scan(root / "blobs" / "sha256", false);
    s.scan(root / "statcache", false);
    s.scan_shards(root / "actions");
    s.scan_shards(root / "steps");
    return std::move(s.out);
}

PruneReport prune_locked(const fs::path& root, BlobStore& blobs, const PruneOptions& options,
                         const RootBlobs& root_blobs, const StoreLock& lock) {
    if (!options.dry_run && lock.mode() != LockMode::exclusive)
        throw Error("internal error: prune needs the store lock held exclusively");
    return Pruner(root, blobs, options).run(root_blobs);
}

PruneReport prune(const fs::path& root, BlobStore& blobs, const PruneOptions& options,
                  const RootBlobs& root_blobs) {
    auto lock = options.dry_run ? StoreLock::build(root, options.wait)
                                : StoreLock::maintenance(root, options.wait);
    return prune_locked(root, blobs, options, root_blobs, lock);
}

std::optional<PruneReport> maybe_auto_prune(const fs::path& root, BlobStore& blobs,
                                            std::uint64_t limit, const RootBlobs& root_blobs) {
    auto estimate = estimated_store_size(root);
    if (!estimate) {
        auto usage = store_usage(root);
        record_store_size(root, usage.prunable_bytes());
        estimate = usage.prunable_bytes();
    }
    if (*estimate <= limit) return std::nullopt;
    // Another build is running (or a prune): skip, the next build to finish will try again.
    auto lock = StoreLock::try_maintenance(root);
    if (!lock) return std::nullopt;
    PruneOptions options;
    options.max_size = limit / 10 * 9; // a low-water mark, so the next builds don't prune again
    return prune_locked(root, blobs, options, root_blobs, *lock);
}

std::optional<std::uint64_t> max_size_from_env() {
    const char* v = std::getenv("FACTORY_CACHE_MAX_SIZE");
    if (!v || !*v) return std::nullopt;
    auto size = parse_size(v);
    if (!size) throw usage_error("FACTORY_CACHE_MAX_SIZE: " + size.error());
    return *size;
}

} // namespace factory::cache
