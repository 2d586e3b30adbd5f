#include "cache/action_store.hpp"
#include "cache/gc.hpp"
#include "cache/stats.hpp"
#include "factory/util/files.hpp"
#include "tests/unit/test_dir.hpp"

#include <fcntl.h>
#include <fstream>
#include <set>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using factory::cache::ActionRecord;
using factory::cache::ActionStore;
using factory::cache::BlobStore;
using factory::cache::parse_duration;
using factory::cache::parse_size;
using factory::cache::prune;
using factory::cache::PruneOptions;
using factory::cache::PruneReport;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct Store {
    factory::testing::TestDir dir;
    BlobStore blobs{make()};
    ActionStore actions{dir.path(), blobs};
    std::vector<std::string> roots;

    BlobStore make() {
        fs::create_directories(dir / "blobs/sha256");
        fs::create_directories(dir / "tmp");
        return BlobStore(dir / "blobs/sha256", dir / "tmp");
    }
    factory::cache::RootBlobs root_fn() {
        return [this] { return roots; };
    }
    PruneReport run(PruneOptions o = {}) { return prune(dir.path(), blobs, o, root_fn()); }

    // A blob of `size` bytes whose content starts with `tag`.
    std::string blob(const std::string& tag, std::size_t size = 1000) {
        auto content = tag + std::string(size - tag.size(), '.');
        return blobs.put(content);
    }
    void record(const std::string& key, std::vector<std::string> hexes, std::int64_t last_used) {
        ActionRecord r;
        r.key = key;
        r.fields = {{"format", "factory-key/1"}};
        r.result = {{"layer", "x"}};
        r.blobs = std::move(hexes);
        actions.put(r);
        set_mtime(actions.record_path(key), last_used);
    }
    static void set_mtime(const fs::path& p, std::int64_t seconds) {
        struct timespec t[2] = {{seconds, 0}, {seconds, 0}};
        ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << p;
    }
    bool has_record(const std::string& key) { return fs::exists(actions.record_path(key)); }
};

std::string key(char c) {
    return std::string(64, c);
}

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

pid_t dead_pid() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status;
    ::waitpid(pid, &status, 0);
    return pid;
}

void touch(const fs::path& p, const std::string& data = "partial") {
    std::ofstream(p, std::ios::binary) << data;
}

} // namespace

TEST(CacheGc, ParseSize) {
    EXPECT_EQ(parse_size("10G").value(), 10'000'000'000u);
    EXPECT_EQ(parse_size("500M").value(), 500'000'000u);
    EXPECT_EQ(parse_size("500mb").value(), 500'000'000u);
    EXPECT_EQ(parse_size("1.5GiB").value(), 1'610'612'736u);
    EXPECT_EQ(parse_size("2 KiB").value(), 2048u);
    EXPECT_EQ(parse_size("3Ti").value(), 3u * 1099511627776u);
    EXPECT_EQ(parse_size("123").value(), 123u);
    EXPECT_EQ(parse_size("0").value(), 0u);
    for (auto bad : {"", "G", "10X", "-1", "1.G", "1e9", "99999999999999999999999T"})
        EXPECT_FALSE(parse_size(bad)) << bad;
    EXPECT_EQ(parse_size("10X").error(),
              "invalid size \"10X\": unknown unit \"X\" (like 10G, 500M, 1.5GiB)");
}

TEST(CacheGc, ParseDuration) {
    EXPECT_EQ(parse_duration("7d").value(), std::chrono::seconds(7 * 86400));
    EXPECT_EQ(parse_duration("12h").value(), std::chrono::seconds(12 * 3600));
    EXPECT_EQ(parse_duration("30m").value(), std::chrono::seconds(1800));
    EXPECT_EQ(parse_duration("45s").value(), std::chrono::seconds(45));
    EXPECT_EQ(parse_duration("2w").value(), std::chrono::seconds(14 * 86400));
    EXPECT_EQ(parse_duration("1d12h").value(), std::chrono::seconds(129600));
    for (auto bad : {"", "7", "d", "5y", "-1d", "1.5d"})
        EXPECT_FALSE(parse_duration(bad)) << bad;
}

TEST(CacheGc, PruneBySizeRemovesLeastRecentlyUsedFirstAndNeverARoot) {
    Store s;
    auto a = s.blob("A"), b = s.blob("B"), c = s.blob("C"), r = s.blob("R");
    s.roots = {r};
    auto t = now_s();
    s.record(key('a'), {a}, t - 300); // oldest
    s.record(key('b'), {b}, t - 200);
    s.record(key('c'), {c}, t - 100); // newest

    PruneOptions o;
    o.max_size = 3000; // R + C + one record fit; R + B + C + two records don't
    auto report = s.run(o);
    EXPECT_FALSE(s.has_record(key('a')));
    EXPECT_FALSE(s.has_record(key('b')));
    EXPECT_TRUE(s.has_record(key('c')));
    EXPECT_FALSE(s.blobs.has(a));
    EXPECT_FALSE(s.blobs.has(b));
    EXPECT_TRUE(s.blobs.has(c));
    EXPECT_TRUE(s.blobs.has(r));
    EXPECT_EQ(report.records_removed, 2u);
    EXPECT_EQ(report.blobs_removed, 2u);
    EXPECT_EQ(report.records_kept, 1u);
    EXPECT_EQ(report.blobs_kept, 2u);
    EXPECT_LE(report.bytes_kept, 3000u);
    EXPECT_GE(report.bytes_freed, 2000u);
    ASSERT_GE(report.items.size(), 4u);
    EXPECT_EQ(report.items[0].kind, "record");
    EXPECT_EQ(report.items[0].name, key('a'));
    EXPECT_EQ(report.items[0].reason, "least recently used");
    EXPECT_EQ(report.items[1].name, key('b'));

    // Down to nothing: every record goes, the root blob stays.
    o.max_size = 0;
    s.run(o);
    EXPECT_FALSE(s.has_record(key('c')));
    EXPECT_FALSE(s.blobs.has(c));
    EXPECT_TRUE(s.blobs.has(r));
}

TEST(CacheGc, LookupMakesARecordRecentlyUsed) {
    Store s;
    auto a = s.blob("A"), b = s.blob("B");
    auto t = now_s();
    s.record(key('a'), {a}, t - 300);
    s.record(key('b'), {b}, t - 200);
    ASSERT_TRUE(s.actions.lookup(key('a'))); // a is now the most recent
    PruneOptions o;
    o.max_size = 1500;
    s.run(o);
    EXPECT_TRUE(s.has_record(key('a')));
    EXPECT_FALSE(s.has_record(key('b')));
}

TEST(CacheGc, SharedBlobStaysWhileOneRecordNeedsIt) {
    Store s;
    auto shared = s.blob("S"), own = s.blob("O");
    auto t = now_s();
    s.record(key('a'), {shared, own}, t - 300);
    s.record(key('b'), {shared}, t - 100);
    PruneOptions o;
    o.max_size = 1500;
    s.run(o);
    EXPECT_FALSE(s.has_record(key('a')));
    EXPECT_TRUE(s.has_record(key('b')));
    EXPECT_TRUE(s.blobs.has(shared));
    EXPECT_FALSE(s.blobs.has(own));
}

TEST(CacheGc, OlderThanRemovesUnusedRecords) {
    Store s;
    auto a = s.blob("A"), b = s.blob("B");
    auto t = now_s();
    s.record(key('a'), {a}, t - 10 * 86400);
    s.record(key('b'), {b}, t - 86400);
    PruneOptions o;
    o.older_than = std::chrono::seconds(7 * 86400);
    auto report = s.run(o);
    EXPECT_FALSE(s.has_record(key('a')));
    EXPECT_TRUE(s.has_record(key('b')));
    EXPECT_FALSE(s.blobs.has(a));
    EXPECT_TRUE(s.blobs.has(b));
    ASSERT_FALSE(report.items.empty());
    EXPECT_EQ(report.items[0].reason, "unused for 10 d");
}

TEST(CacheGc, UnreachableBlobsAndBrokenRecordsGoWithoutLimits) {
    Store s;
    auto kept = s.blob("K"), garbage = s.blob("G"), root = s.blob("R"), gone = s.blob("X");
    s.roots = {root};
    auto t = now_s();
    s.record(key('a'), {kept}, t);
    s.record(key('b'), {gone}, t);
    fs::remove(s.blobs.path(gone));
    fs::create_directories(s.actions.record_path(key('c')).parent_path());
    touch(s.actions.record_path(key('c')), "{not json");
    auto report = s.run();
    EXPECT_TRUE(s.has_record(key('a')));
    EXPECT_FALSE(s.has_record(key('b')));
    EXPECT_FALSE(s.has_record(key('c')));
    EXPECT_TRUE(s.blobs.has(kept));
    EXPECT_TRUE(s.blobs.has(root));
    EXPECT_FALSE(s.blobs.has(garbage));
    EXPECT_EQ(report.blobs_removed, 1u);
    EXPECT_EQ(report.records_removed, 2u);
}

TEST(CacheGc, DryRunChangesNothing) {
    Store s;
    auto a = s.blob("A"), g = s.blob("G");
    s.record(key('a'), {a}, now_s() - 100);
    PruneOptions o;
    o.max_size = 0;
    o.dry_run = true;
    auto report = s.run(o);
    EXPECT_TRUE(s.has_record(key('a')));
    EXPECT_TRUE(s.blobs.has(a));
    EXPECT_TRUE(s.blobs.has(g));
    std::set<std::string> named;
    for (const auto& item : report.items)
        named.insert(item.kind + " " + item.name);
    EXPECT_EQ(named, (std::set<std::string>{"record " + key('a'), "blob " + a, "blob " + g}));
    EXPECT_EQ(report.bytes_kept, 0u);
    // The real run removes exactly what the dry run listed.
    o.dry_run = false;
    auto real = s.run(o);
    EXPECT_EQ(real.items.size(), report.items.size());
    EXPECT_FALSE(s.blobs.has(a));
}

TEST(CacheGc, RootsThatCannotBeComputedStopThePrune) {
    Store s;
    auto g = s.blob("G");
    EXPECT_THROW(prune(s.dir.path(), s.blobs, {},
                       []() -> std::vector<std::string> {
                           throw factory::Error("index.json: manifest sha256:… is missing");
                       }),
                 factory::Error);
    EXPECT_TRUE(s.blobs.has(g));
}

TEST(CacheGc, PruneWaitsForRunningBuildsThenGivesUp) {
    Store s;
    auto g = s.blob("G");
    auto build = factory::cache::StoreLock::build(s.dir.path());
    PruneOptions o;
    o.wait.timeout = 100ms;
    try {
        s.run(o);
        FAIL() << "prune ran during a build";
    } catch (const factory::Error& e) {
        EXPECT_NE(std::string(e.what()).find("is in use by a running build"), std::string::npos);
    }
    EXPECT_TRUE(s.blobs.has(g));
    o.dry_run = true; // a dry run only reads: it may run beside builds
    EXPECT_NO_THROW(s.run(o));
}

TEST(CacheGc, SweepsStaleTemps) {
    Store s;
    auto me = ::getpid();
    auto dead = dead_pid();
    auto hour_ago = now_s() - 2 * 3600;
    auto name = [](const std::string& stem, pid_t pid) {
        return ".tmp-" + stem + "-" + std::to_string(pid) + "-3-0badf00d";
    };
    touch(s.dir / "tmp" / name("blob", dead)); // writer gone
    touch(s.dir / "tmp" / name("blob", me));   // writer alive, fresh: kept
    touch(s.dir / "tmp" / name("layer", me));  // writer alive but old: stale
    Store::set_mtime(s.dir / "tmp" / name("layer", me), hour_ago);
    fs::create_directories(s.dir / "tmp/build-Ab12Cd/sub");
    touch(s.dir / "tmp/build-Ab12Cd/sub/file");
    Store::set_mtime(s.dir / "tmp/build-Ab12Cd", hour_ago); // an old scratch dir
    fs::create_directories(s.dir / "tmp/build-fresh1");
    touch(s.dir / name("index.json", dead)); // AtomicFile temp beside index.json
    touch(s.dir / "index.json", "{}");       // not a temp
    touch(s.dir / "blobs/sha256" / name("blob", dead));
    fs::create_directories(s.dir / "actions/ab");
    touch(s.dir / "actions/ab" / name(key('a') + ".json", dead));

    auto dry = factory::cache::sweep_temps(s.dir.path(), {1h, true});
    EXPECT_EQ(dry.size(), 6u);
    EXPECT_TRUE(fs::exists(s.dir / "tmp" / name("blob", dead)));

    auto report = s.run();
    EXPECT_EQ(report.temps_removed, 6u);
    EXPECT_FALSE(fs::exists(s.dir / "tmp" / name("blob", dead)));
    EXPECT_TRUE(fs::exists(s.dir / "tmp" / name("blob", me)));
    EXPECT_FALSE(fs::exists(s.dir / "tmp" / name("layer", me)));
    EXPECT_FALSE(fs::exists(s.dir / "tmp/build-Ab12Cd"));
    EXPECT_TRUE(fs::exists(s.dir / "tmp/build-fresh1"));
    EXPECT_FALSE(fs::exists(s.dir / name("index.json", dead)));
    EXPECT_TRUE(fs::exists(s.dir / "index.json"));
    EXPECT_FALSE(fs::exists(s.dir / "blobs/sha256" / name("blob", dead)));
    EXPECT_FALSE(fs::exists(s.dir / "actions/ab" / name(key('a') + ".json", dead)));
}

TEST(CacheGc, PruneDropsStepPointersKeyLocksAndQuarantine) {
    Store s;
    auto a = s.blob("A");
    s.record(key('a'), {a}, now_s() - 100);
    s.actions.set_last_for_step(key('5'), key('a'));
    { auto l = factory::cache::KeyLock::acquire(s.dir.path(), key('a')); }
    fs::create_directories(s.dir / "quarantine");
    touch(s.dir / "quarantine/deadbeef.1-2-3", "bad");
    PruneOptions o;
    o.max_size = 0;
    s.run(o);
    EXPECT_FALSE(fs::exists(s.actions.step_path(key('5'))));
    EXPECT_FALSE(fs::exists(s.dir / "locks/aa"));
    EXPECT_TRUE(fs::exists(s.dir / "locks/store.lock"));
    EXPECT_FALSE(fs::exists(s.dir / "quarantine/deadbeef.1-2-3"));
}

TEST(CacheGc, AutoPruneIsCheapUnderTheLimitAndPrunesOverIt) {
    Store s;
    auto a = s.blob("A"), b = s.blob("B");
    auto t = now_s();
    s.record(key('a'), {a}, t - 200);
    s.record(key('b'), {b}, t - 100);
    // Under the limit: nothing happens (and the size is measured once).
    EXPECT_FALSE(factory::cache::maybe_auto_prune(s.dir.path(), s.blobs, 100000, s.root_fn()));
    auto estimate = factory::cache::estimated_store_size(s.dir.path());
    ASSERT_TRUE(estimate);
    EXPECT_GT(*estimate, 2000u);
    // Over it: pruned to 90% of the limit.
    auto report = factory::cache::maybe_auto_prune(s.dir.path(), s.blobs, 1800, s.root_fn());
    ASSERT_TRUE(report);
    EXPECT_LE(report->bytes_kept, 1620u);
    EXPECT_FALSE(s.has_record(key('a')));
    EXPECT_TRUE(s.has_record(key('b')));
    EXPECT_EQ(factory::cache::estimated_store_size(s.dir.path()), report->bytes_kept);
    // A running build makes it skip, not wait.
    factory::cache::record_store_size(s.dir.path(), 1u << 30);
    auto build = factory::cache::StoreLock::build(s.dir.path());
    EXPECT_FALSE(factory::cache::maybe_auto_prune(s.dir.path(), s.blobs, 1000, s.root_fn()));
    EXPECT_TRUE(s.has_record(key('b')));
}

TEST(CacheGc, MaxSizeFromEnv) {
    ::unsetenv("FACTORY_CACHE_MAX_SIZE");
    EXPECT_FALSE(factory::cache::max_size_from_env());
    ::setenv("FACTORY_CACHE_MAX_SIZE", "2G", 1);
    EXPECT_EQ(factory::cache::max_size_from_env(), 2'000'000'000u);
    ::setenv("FACTORY_CACHE_MAX_SIZE", "lots", 1);
    EXPECT_THROW(factory::cache::max_size_from_env(), factory::Error);
    ::unsetenv("FACTORY_CACHE_MAX_SIZE");
}
