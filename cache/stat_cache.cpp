#include "cache/stat_cache.hpp"

#include "cache/lock.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <limits>
#include <unistd.h>
#include <vector>

namespace factory::cache {

namespace {

// statcache/v1 (docs/cache.md):
//   header  "factory-statcache 1\n" u64le(count)
//   entry   u32le(len) path u64le(dev) u64le(ino) u64le(size) i64le(mtime_ns) i64le(ctime_ns)
//           u32le(mode) i64le(used) sha256[32]
//   trailer sha256[32] of everything before it
constexpr std::string_view magic = "factory-statcache 1\n";
constexpr std::size_t fixed_entry_size = 4 + 8 * 3 + 8 * 2 + 4 + 8 + 32;
constexpr std::size_t max_path = 1 << 16;
// A used time is bumped on a hit only when older than this, so a no-op build doesn't rewrite
// the file just to say "still used".
constexpr std::int64_t used_resolution = 24 * 3600;

std::int64_t ns_of(const struct timespec& ts) {
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t now_ns() {
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return ns_of(ts);
}

std::int64_t now_seconds() {
    return now_ns() / 1'000'000'000;
}

void put_u(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_u(const unsigned char* p, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
        v |= std::uint64_t{p[i]} << (8 * i);
    return v;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool to_binary(std::string_view hex, std::array<unsigned char, 32>& out) {
    if (hex.size() != 64) return false;
    for (std::size_t i = 0; i < 32; ++i) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return true;
}

std::string to_hex(const std::array<unsigned char, 32>& bin) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(64, '0');
    for (std::size_t i = 0; i < 32; ++i) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 0xf];
    }
    return out;
}

bool matches(const StatCache::Entry& e, const struct stat& st) {
    return e.dev == static_cast<std::uint64_t>(st.st_dev) &&
           e.ino == static_cast<std::uint64_t>(st.st_ino) &&
           e.size == static_cast<std::uint64_t>(st.st_size) && e.mtime_ns == ns_of(st.st_mtim) &&
           e.ctime_ns == ns_of(st.st_ctim) && e.mode == st.st_mode;
}

bool same_stat(const StatCache::Entry& a, const StatCache::Entry& b) {
    return a.dev == b.dev && a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns &&
           a.ctime_ns == b.ctime_ns && a.mode == b.mode;
}

bool same_file_state(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
           ns_of(a.st_mtim) == ns_of(b.st_mtim) && ns_of(a.st_ctim) == ns_of(b.st_ctim) &&
           a.st_mode == b.st_mode;
}

// Keeps the max_entries most recently used entries.
void evict(StatCache::Map& entries, std::size_t max_entries) {
    if (entries.size() <= max_entries) return;
    std::vector<std::pair<std::int64_t, const std::string*>> by_use;
    by_use.reserve(entries.size());
    for (const auto& [path, e] : entries)
        by_use.emplace_back(e.used, &path);
    auto drop = entries.size() - max_entries;
    std::nth_element(by_use.begin(), by_use.begin() + static_cast<std::ptrdiff_t>(drop),
                     by_use.end());
    std::vector<std::string> victims;
    victims.reserve(drop);
    for (std::size_t i = 0; i < drop; ++i)
        victims.push_back(*by_use[i].second);
    for (const auto& v : victims)
        entries.erase(v);
}

// Byte order with '/' below every other byte: the order a copy step walks its sources in
// (layer::path_less), so that its lookups go through a file written this way front to back.
bool walk_order_less(std::string_view a, std::string_view b) {
    auto n = std::min(a.size(), b.size());
    auto diff = std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin());
    if (diff.first == a.begin() + static_cast<std::ptrdiff_t>(n)) return a.size() < b.size();
    auto rank = [](char c) { return c == '/' ? 0 : static_cast<unsigned char>(c) + 1; };
    return rank(*diff.first) < rank(*diff.second);
}

} // namespace

std::string serialize_stat_cache(const StatCache::Map& entries) {
    std::vector<const StatCache::Map::value_type*> sorted;
    sorted.reserve(entries.size());
    for (const auto& entry : entries)
        sorted.push_back(&entry);
    std::sort(sorted.begin(), sorted.end(),
              [](auto* a, auto* b) { return walk_order_less(a->first, b->first); });
    std::string out;
    out.reserve(magic.size() + 8 + entries.size() * (fixed_entry_size + 64) + 32);
    out.append(magic);
    put_u(out, entries.size(), 8);
    for (const auto* entry : sorted) {
        const auto& [path, e] = *entry;
        put_u(out, path.size(), 4);
        out.append(path);
        put_u(out, e.dev, 8);
        put_u(out, e.ino, 8);
        put_u(out, e.size, 8);
        put_u(out, static_cast<std::uint64_t>(e.mtime_ns), 8);
        put_u(out, static_cast<std::uint64_t>(e.ctime_ns), 8);
        put_u(out, e.mode, 4);
        put_u(out, static_cast<std::uint64_t>(e.used), 8);
        out.append(reinterpret_cast<const char*>(e.sha256.data()), e.sha256.size());
    }
    std::array<unsigned char, 32> sum{};
    to_binary(Sha256::hex(out), sum);
    out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
    return out;
}

namespace {

// Checks the whole file (magic, checksum, every entry's bounds) and returns where each entry
// starts (its u32 path length), in file order; nullopt if anything is wrong.
std::optional<std::vector<std::size_t>> entry_offsets(std::string_view data) {
    if (data.size() < magic.size() + 8 + 32 || !data.starts_with(magic)) return std::nullopt;
    auto body = data.substr(0, data.size() - 32);
    std::array<unsigned char, 32> sum{};
    to_binary(Sha256::hex(body), sum);
    if (std::memcmp(sum.data(), data.data() + body.size(), 32) != 0) return std::nullopt;

    auto base = reinterpret_cast<const unsigned char*>(body.data());
    auto p = base + magic.size();
    auto end = base + body.size();
    auto count = get_u(p, 8);
    p += 8;
    if (count > static_cast<std::uint64_t>(end - p) / (fixed_entry_size)) return std::nullopt;
    std::vector<std::size_t> offsets;
    offsets.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
        if (end - p < 4) return std::nullopt;
        auto len = get_u(p, 4);
        if (len == 0 || len > max_path ||
            static_cast<std::uint64_t>(end - p) < len + fixed_entry_size)
            return std::nullopt;
        offsets.push_back(static_cast<std::size_t>(p - base));
        p += len + fixed_entry_size;
    }
    if (p != end) return std::nullopt;
    return offsets;
}

// The entry at `offset` of a checked file (entry_offsets), and its path.
std::string_view decode_entry(std::string_view data, std::size_t offset, StatCache::Entry& e) {
    auto p = reinterpret_cast<const unsigned char*>(data.data()) + offset;
    auto len = static_cast<std::size_t>(get_u(p, 4));
    std::string_view path(data.data() + offset + 4, len);
    p += 4 + len;
    e.dev = get_u(p, 8);
    e.ino = get_u(p + 8, 8);
    e.size = get_u(p + 16, 8);
    e.mtime_ns = static_cast<std::int64_t>(get_u(p + 24, 8));
    e.ctime_ns = static_cast<std::int64_t>(get_u(p + 32, 8));
    e.mode = static_cast<std::uint32_t>(get_u(p + 40, 4));
    e.used = static_cast<std::int64_t>(get_u(p + 44, 8));
    std::memcpy(e.sha256.data(), p + 52, 32);
    return path;
}

} // namespace

std::optional<StatCache::Map> parse_stat_cache(std::string_view data) {
    auto offsets = entry_offsets(data);
    if (!offsets) return std::nullopt;
    StatCache::Map map;
    map.reserve(offsets->size());
    for (auto offset : *offsets) {
        StatCache::Entry e;
        auto path = decode_entry(data, offset, e);
        map.insert_or_assign(std::string(path), e);
    }
    return map;
}

StatCache::StatCache(fs::path file, std::size_t max_entries)
    : file_(std::move(file)), max_entries_(max_entries) {}

StatCache::StatCache(StatCache&& other) noexcept
    : file_(std::move(other.file_)), max_entries_(other.max_entries_),
      racy_window_(other.racy_window_) {
    std::lock_guard lock(other.mutex_);
    loaded_ = std::move(other.loaded_);
    offsets_ = std::move(other.offsets_);
    slots_ = std::move(other.slots_);
    loaded_count_ = other.loaded_count_;
    sequential_ = other.sequential_;
    cursor_ = other.cursor_;
    entries_ = std::move(other.entries_);
    changed_ = other.changed_;
}

StatCache StatCache::load(fs::path file, std::size_t max_entries) {
    StatCache cache(std::move(file), max_entries);
    auto data = read_file(cache.file_, std::uint64_t{1} << 32);
    if (!data) return cache;
    auto offsets = entry_offsets(*data);
    if (!offsets || offsets->size() >= std::numeric_limits<std::uint32_t>::max()) return cache;
    cache.loaded_ = std::move(*data);
    cache.offsets_ = std::move(*offsets);
    cache.index_loaded();
    return cache;
}

// An open-addressing table over the loaded file (linear probing, at most half full): a
// lookup hashes the path once and usually touches one slot and one entry, where a map of
// strings would cost an allocation per entry to build and a chain of nodes per lookup.
void StatCache::index_loaded() {
    std::size_t n = 16;
    while (n < 2 * offsets_.size())
        n *= 2;
    slots_.assign(n, Slot{});
    loaded_count_ = 0;
    sequential_ = true;
    for (std::size_t i = 0; i < offsets_.size(); ++i) {
        StatCache::Entry e;
        auto path = decode_entry(loaded_, offsets_[i], e);
        auto [slot, found] = find_slot(path);
        if (found)
            sequential_ = false; // the cursor could meet the entry that lost
        else
            ++loaded_count_;
        // A path twice in the file: the later entry wins, as parse_stat_cache has it.
        slots_[slot] = Slot{static_cast<std::uint32_t>(std::hash<std::string_view>{}(path) >> 32),
                            static_cast<std::uint32_t>(i + 1)};
    }
}

std::pair<std::size_t, bool> StatCache::find_slot(std::string_view path) const {
    if (slots_.empty()) return {0, false};
    auto hash = std::hash<std::string_view>{}(path);
    auto tag = static_cast<std::uint32_t>(hash >> 32);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const Slot& slot = slots_[i];
        if (slot.index == 0) return {i, false};
        if (slot.tag != tag) continue;
        StatCache::Entry e;
        if (decode_entry(loaded_, offsets_[slot.index - 1], e) == path) return {i, true};
    }
}

std::optional<StatCache::Entry> StatCache::loaded_entry(std::string_view path) const {
    StatCache::Entry e;
    // A copy step looks its files up in walk order, the order save() writes: the entry after
    // the last one found is usually the one, and reading on through the file costs no probe.
    if (sequential_ && cursor_ < offsets_.size() &&
        decode_entry(loaded_, offsets_[cursor_], e) == path) {
        ++cursor_;
        return e;
    }
    auto [slot, found] = find_slot(path);
    if (!found) return std::nullopt;
    cursor_ = slots_[slot].index; // the entry's position + 1
    decode_entry(loaded_, offsets_[cursor_ - 1], e);
    return e;
}

StatCache::Map StatCache::all_entries() const {
    Map all;
    all.reserve(loaded_count_ + entries_.size());
    for (std::size_t i = 0; i < offsets_.size(); ++i) {
        StatCache::Entry e;
        auto path = decode_entry(loaded_, offsets_[i], e);
        all.insert_or_assign(std::string(path), e);
    }
    for (const auto& [path, e] : entries_)
        all.insert_or_assign(path, e);
    return all;
}

std::size_t StatCache::size() const {
    std::lock_guard lock(mutex_);
    std::size_t n = loaded_count_;
    for (const auto& [path, e] : entries_)
        if (!find_slot(path).second) ++n;
    return n;
}

std::optional<std::string> StatCache::get(const std::string& path, const struct stat& st) const {
    std::lock_guard lock(mutex_);
    // What this process put or touched first, then the file as loaded.
    auto it = entries_.empty() ? entries_.end() : entries_.find(path);
    std::optional<Entry> loaded;
    if (it == entries_.end()) loaded = loaded_entry(path);
    const Entry* e = it != entries_.end() ? &it->second : loaded ? &*loaded : nullptr;
    if (!e || !matches(*e, st)) return std::nullopt;
    auto now = now_seconds();
    if (now - e->used > used_resolution) {
        if (it == entries_.end()) it = entries_.emplace(path, *e).first;
        it->second.used = now;
        changed_ = true;
    }
    return to_hex(e->sha256);
}

void StatCache::put(const std::string& path, const struct stat& st, std::string_view sha256_hex,
                    std::optional<std::int64_t> hash_started_ns) {
    // Racily clean: a write in the same timestamp tick as this version would leave ctime equal.
    auto since = hash_started_ns ? *hash_started_ns : now_ns();
    if (ns_of(st.st_ctim) + racy_window_.count() > since) return;
    Entry e;
    if (!to_binary(sha256_hex, e.sha256)) return;
    e.dev = static_cast<std::uint64_t>(st.st_dev);
    e.ino = static_cast<std::uint64_t>(st.st_ino);
    e.size = static_cast<std::uint64_t>(st.st_size);
    e.mtime_ns = ns_of(st.st_mtim);
    e.ctime_ns = ns_of(st.st_ctim);
    e.mode = st.st_mode;
    e.used = now_seconds();
    e.dirty = true;
    std::lock_guard lock(mutex_);
    entries_.insert_or_assign(path, e);
    changed_ = true;
}

void StatCache::save() {
    std::lock_guard lock(mutex_);
    if (!changed_) return;
    std::error_code ec;
    fs::create_directories(file_.parent_path(), ec);
    if (ec) throw Error("cannot create " + file_.parent_path().string() + ": " + ec.message());
    // Another process may have saved since we loaded: merge under the lock, or its entries are
    // lost. Its entries win unless we put ours in this session (both are verified; ours is newer
    // for us). The lock is held for one read and one write.
    auto file_lock = FileLock::exclusive(file_.string() + ".lock");
    Map merged;
    if (auto data = read_file(file_, std::uint64_t{1} << 32); data)
        if (auto map = parse_stat_cache(*data)) merged = std::move(*map);
    for (auto& [path, ours] : all_entries()) {
        auto it = merged.find(path);
        if (it == merged.end() || ours.dirty) {
            merged.insert_or_assign(path, ours);
        } else if (same_stat(it->second, ours)) {
            it->second.used = std::max(it->second.used, ours.used);
        }
    }
    evict(merged, max_entries_);
    for (auto& [path, e] : merged)
        e.dirty = false;
    write_file_atomic(file_, serialize_stat_cache(merged));
    entries_ = std::move(merged);
    loaded_.clear();
    offsets_.clear();
    slots_.clear();
    loaded_count_ = 0;
    cursor_ = 0;
    changed_ = false;
}

Result<std::string> hash_file_cached(StatCache& cache, const std::string& path) {
    std::string key = path;
    if (key.empty() || key[0] != '/') key = fs::absolute(path).string();
    struct stat st {};
    if (::lstat(key.c_str(), &st) != 0)
        return Unexpected("cannot stat " + key + ": " + errno_string(errno));
    if (!S_ISREG(st.st_mode)) return Unexpected(key + " is not a regular file");
    if (auto hit = cache.get(key, st)) return *hit;

    for (int attempt = 0; attempt < 3; ++attempt) {
        auto started = now_ns();
        Fd fd(::open(key.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) return Unexpected("cannot open " + key + ": " + errno_string(errno));
        struct stat before {
        }, after{};
        if (::fstat(fd.get(), &before) != 0)
            return Unexpected("cannot stat " + key + ": " + errno_string(errno));
        if (!S_ISREG(before.st_mode)) return Unexpected(key + " is not a regular file");
        Sha256 h;
        std::vector<char> buf(1 << 18);
        for (;;) {
            auto n = read_some(fd.get(), buf.data(), buf.size());
            if (!n) return Unexpected("cannot read " + key + ": " + n.error());
            if (*n == 0) break;
            h.update(buf.data(), *n);
        }
        if (::fstat(fd.get(), &after) != 0)
            return Unexpected("cannot stat " + key + ": " + errno_string(errno));
        auto hex = h.hex_digest();
        // Changed while we read: the bytes we hashed may be a mix of two versions.
        if (!same_file_state(before, after)) continue;
        cache.put(key, after, hex, started);
        return hex;
    }
    return Unexpected(key + " kept changing while it was hashed");
}

} // namespace factory::cache
