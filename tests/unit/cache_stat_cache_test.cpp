#include "cache/stat_cache.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <algorithm>
#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include "tests/unit/test_util.hpp"

using factory::testing::write;

using factory::Sha256;
using factory::cache::hash_file_cached;
using factory::cache::StatCache;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct stat lstat_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0);
    return st;
}

// A cache whose racy window is short, so a test need not wait 2 s for files to be cacheable.
StatCache quick_cache(const fs::path& file) {
    StatCache c(file);
    c.set_racy_window(10ms);
    return c;
}

// Past the racy window and past a coarse kernel timestamp tick.
void let_time_pass() {
    std::this_thread::sleep_for(50ms);
}

} // namespace

TEST(StatCache, HashesAndThenHits) {
    factory::testing::TestDir dir;
    auto file = dir / "a.txt";
    write(file, "hello");
    let_time_pass();
    auto cache = quick_cache(dir / "statcache/v1");
    auto first = hash_file_cached(cache, file.string());
    ASSERT_TRUE(first) << first.error();
    EXPECT_EQ(*first, Sha256::hex("hello"));
    EXPECT_EQ(cache.get(file.string(), lstat_of(file)), Sha256::hex("hello"));
    EXPECT_EQ(hash_file_cached(cache, file.string()).value(), Sha256::hex("hello"));
}

TEST(StatCache, CatchesASameSizeSameMtimeRewrite) {
    factory::testing::TestDir dir;
    auto file = dir / "a.txt";
    write(file, "version-1");
    let_time_pass();
    auto cache = quick_cache(dir / "statcache/v1");
    ASSERT_EQ(hash_file_cached(cache, file.string()).value(), Sha256::hex("version-1"));
    auto before = lstat_of(file);
    ASSERT_TRUE(cache.get(file.string(), before));

    let_time_pass();
    write(file, "version-2"); // same size
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0); // mtime put back
    auto after = lstat_of(file);
    ASSERT_EQ(after.st_size, before.st_size);
    ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    ASSERT_EQ(after.st_ino, before.st_ino);
    ASSERT_FALSE(after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
                 after.st_ctim.tv_nsec == before.st_ctim.tv_nsec)
        << "ctime did not change: the kernel's timestamp tick is coarser than 50 ms";

    EXPECT_FALSE(cache.get(file.string(), after)); // the cache misses
    EXPECT_EQ(hash_file_cached(cache, file.string()).value(), Sha256::hex("version-2"));
}

TEST(StatCache, RacilyCleanFilesAreNotRecorded) {
    factory::testing::TestDir dir;
    auto file = dir / "fresh";
    write(file, "just written");
    StatCache cache(dir / "statcache/v1"); // default 2 s window
    EXPECT_EQ(hash_file_cached(cache, file.string()).value(), Sha256::hex("just written"));
    EXPECT_FALSE(cache.get(file.string(), lstat_of(file)));
    EXPECT_EQ(cache.size(), 0u);
}

TEST(StatCache, RefusesSymlinksAndMissingFiles) {
    factory::testing::TestDir dir;
    write(dir / "target", "t");
    fs::create_symlink("target", dir / "link");
    auto cache = quick_cache(dir / "statcache/v1");
    auto r = hash_file_cached(cache, (dir / "link").string());
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("is not a regular file"), std::string::npos) << r.error();
    auto m = hash_file_cached(cache, (dir / "missing").string());
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().find("cannot stat"), std::string::npos) << m.error();
}

TEST(StatCache, SaveAndLoadRoundTrip) {
    factory::testing::TestDir dir;
    write(dir / "a", "aaa");
    write(dir / "b", "bbb");
    let_time_pass();
    auto cache = quick_cache(dir / "statcache/v1");
    ASSERT_TRUE(hash_file_cached(cache, (dir / "a").string()));
    ASSERT_TRUE(hash_file_cached(cache, (dir / "b").string()));
    cache.save();
    auto loaded = StatCache::load(dir / "statcache/v1");
    EXPECT_EQ(loaded.size(), 2u);
    EXPECT_EQ(loaded.get((dir / "a").string(), lstat_of(dir / "a")), Sha256::hex("aaa"));
    EXPECT_EQ(loaded.get((dir / "b").string(), lstat_of(dir / "b")), Sha256::hex("bbb"));
}

TEST(StatCache, SaveMergesWithAnotherProcessesSave) {
    factory::testing::TestDir dir;
    write(dir / "a", "aaa");
    write(dir / "b", "bbb");
    let_time_pass();
    auto one = quick_cache(dir / "statcache/v1");
    auto two = quick_cache(dir / "statcache/v1");
    ASSERT_TRUE(hash_file_cached(one, (dir / "a").string()));
    ASSERT_TRUE(hash_file_cached(two, (dir / "b").string()));
    one.save();
    two.save(); // must not drop one's entry
    auto loaded = StatCache::load(dir / "statcache/v1");
    EXPECT_EQ(loaded.size(), 2u);
    EXPECT_TRUE(loaded.get((dir / "a").string(), lstat_of(dir / "a")));
    EXPECT_TRUE(loaded.get((dir / "b").string(), lstat_of(dir / "b")));
}

TEST(StatCache, CorruptOrTruncatedFileLoadsEmpty) {
    factory::testing::TestDir dir;
    write(dir / "a", "aaa");
    let_time_pass();
    auto cache = quick_cache(dir / "v1");
    ASSERT_TRUE(hash_file_cached(cache, (dir / "a").string()));
    cache.save();
    auto good = factory::read_file(dir / "v1").value();
    ASSERT_EQ(StatCache::load(dir / "v1").size(), 1u);

    auto flipped = good;
    flipped[flipped.size() / 2] ^= 0x01;
    write(dir / "v1", flipped);
    EXPECT_EQ(StatCache::load(dir / "v1").size(), 0u);
    for (std::size_t cut : {std::size_t{0}, std::size_t{5}, good.size() / 2, good.size() - 1}) {
        write(dir / "v1", good.substr(0, cut));
        EXPECT_EQ(StatCache::load(dir / "v1").size(), 0u) << "cut at " << cut;
    }
    EXPECT_FALSE(factory::cache::parse_stat_cache(good.substr(0, good.size() - 1)));
}

TEST(StatCache, SaveKeepsTheMostRecentlyUsed) {
    factory::testing::TestDir dir;
    StatCache::Map m;
    auto entry = [](std::int64_t used) {
        StatCache::Entry e;
        e.ino = static_cast<std::uint64_t>(used);
        e.used = used;
        return e;
    };
    m["/old"] = entry(100);
    m["/newest-on-disk"] = entry(300);
    m["/middle"] = entry(200);
    write(dir / "v1", factory::cache::serialize_stat_cache(m));

    auto cache = StatCache::load(dir / "v1", 2);
    ASSERT_EQ(cache.size(), 3u);
    write(dir / "f", "f");
    let_time_pass();
    cache.set_racy_window(10ms);
    ASSERT_TRUE(hash_file_cached(cache, (dir / "f").string())); // used = now
    cache.save();
    auto parsed = factory::cache::parse_stat_cache(factory::read_file(dir / "v1").value());
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->size(), 2u);
    EXPECT_TRUE(parsed->count((dir / "f").string()));
    EXPECT_TRUE(parsed->count("/newest-on-disk"));
}

TEST(StatCache, NothingChangedNothingWritten) {
    factory::testing::TestDir dir;
    StatCache cache(dir / "statcache/v1");
    cache.save();
    EXPECT_FALSE(fs::exists(dir / "statcache/v1"));
}

TEST(StatCache, ParallelHashingIsSafe) {
    factory::testing::TestDir dir;
    for (int i = 0; i < 200; ++i)
        write(dir / ("f" + std::to_string(i)), "content " + std::to_string(i));
    let_time_pass();
    auto cache = quick_cache(dir / "statcache/v1");
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int round = 0; round < 2; ++round)
                for (int i = 0; i < 200; ++i) {
                    auto r = hash_file_cached(cache, (dir / ("f" + std::to_string(i))).string());
                    if (!r || *r != Sha256::hex("content " + std::to_string(i))) ++wrong;
                }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(cache.size(), 200u);
}

TEST(StatCache, TwentyThousandFilesLoadAndCheckFast) {
    factory::testing::TestDir dir;
    constexpr int n = 20000;
    std::vector<std::string> paths;
    for (int d = 0; d < 100; ++d)
        fs::create_directories(dir / ("d" + std::to_string(d)));
    for (int i = 0; i < n; ++i) {
        paths.push_back(
            (dir / ("d" + std::to_string(i % 100)) / ("file-" + std::to_string(i) + ".cpp"))
                .string());
        write(paths.back(), "x" + std::to_string(i));
    }
    let_time_pass();
    {
        auto cache = quick_cache(dir / "statcache/v1");
        for (const auto& p : paths)
            ASSERT_TRUE(hash_file_cached(cache, p));
        cache.save();
    }
    using ms = std::chrono::duration<double, std::milli>;
    auto t0 = std::chrono::steady_clock::now();
    auto cache = StatCache::load(dir / "statcache/v1");
    auto t1 = std::chrono::steady_clock::now();
    std::vector<struct stat> stats(paths.size());
    for (std::size_t i = 0; i < paths.size(); ++i)
        ASSERT_EQ(::lstat(paths[i].c_str(), &stats[i]), 0);
    auto t2 = std::chrono::steady_clock::now();
    int hits = 0;
    for (std::size_t i = 0; i < paths.size(); ++i)
        if (cache.get(paths[i], stats[i])) ++hits;
    auto t3 = std::chrono::steady_clock::now();
    EXPECT_EQ(hits, n);
    auto total = ms(t3 - t0).count();
    std::printf("load %.1f ms + %d lstat %.1f ms + lookups %.1f ms = %.1f ms (file %llu bytes)\n",
                ms(t1 - t0).count(), n, ms(t2 - t1).count(), ms(t3 - t2).count(), total,
                static_cast<unsigned long long>(fs::file_size(dir / "statcache/v1")));
#if !defined(__SANITIZE_ADDRESS__)
    // Typically ~50 ms on an idle 2-core machine; the bound leaves room for a loaded one and
    // still catches a re-hash or a quadratic load.
    EXPECT_LT(total, 300);
#endif
}

// A file not written by save() (any order, a path twice): lookups in any order find what
// parse_stat_cache finds, the later entry of a path winning.
TEST(StatCache, AnyOrderAndRepeatedPathsReadAsParsed) {
    factory::testing::TestDir dir;
    auto put_u = [](std::string& out, std::uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i)
            out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    std::string body = "factory-statcache 1\n";
    const std::vector<std::pair<std::string, std::uint64_t>> entries = {
        {"/z", 1}, {"/a", 2}, {"/m", 3}, {"/a", 4}, {"/b", 5}};
    put_u(body, entries.size(), 8);
    for (const auto& [path, ino] : entries) {
        put_u(body, path.size(), 4);
        body += path;
        for (std::uint64_t v :
             {std::uint64_t{7}, ino, std::uint64_t{1}, std::uint64_t{0}, std::uint64_t{0}})
            put_u(body, v, 8);
        put_u(body, S_IFREG | 0644, 4);
        put_u(body, 0, 8);
        body += std::string(32, static_cast<char>(ino));
    }
    std::string sum;
    auto hex = Sha256::hex(body);
    for (std::size_t i = 0; i < 64; i += 2)
        sum.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    write(dir / "v1", body + sum);

    auto stat_for = [](std::uint64_t ino) {
        struct stat st {};
        st.st_dev = 7;
        st.st_ino = ino;
        st.st_size = 1;
        st.st_mode = S_IFREG | 0644;
        return st;
    };
    auto cache = StatCache::load(dir / "v1");
    EXPECT_EQ(cache.size(), 4u);
    EXPECT_TRUE(cache.get("/z", stat_for(1)));
    EXPECT_FALSE(cache.get("/a", stat_for(2))); // the next entry in the file, but it lost
    EXPECT_TRUE(cache.get("/a", stat_for(4)));
    for (auto [path, ino] : {std::pair{"/b", 5}, std::pair{"/m", 3}, std::pair{"/z", 1}})
        EXPECT_TRUE(cache.get(path, stat_for(static_cast<std::uint64_t>(ino)))) << path;
    EXPECT_FALSE(cache.get("/c", stat_for(5)));
}

// save() writes in walk order, and lookups in that order (and out of it) all hit.
TEST(StatCache, SavedInWalkOrder) {
    factory::testing::TestDir dir;
    std::vector<std::string> names = {"a-b", "a/x", "a/y", "a.c", "b"};
    fs::create_directories(dir / "a");
    for (const auto& n : names)
        write(dir / n, n);
    let_time_pass();
    {
        auto cache = quick_cache(dir / "statcache/v1");
        for (auto it = names.rbegin(); it != names.rend(); ++it)
            ASSERT_TRUE(hash_file_cached(cache, (dir / *it).string()));
        cache.save();
    }
    auto data = factory::read_file(dir / "statcache/v1").value();
    std::vector<std::size_t> at;
    for (const char* n : {"/a/x", "/a/y", "/a-b", "/a.c", "/b"}) {
        at.push_back(data.find(dir.path().string() + n));
        ASSERT_NE(at.back(), std::string::npos) << n;
    }
    EXPECT_TRUE(std::is_sorted(at.begin(), at.end()));
    auto cache = StatCache::load(dir / "statcache/v1");
    for (const char* n : {"a/x", "a/y", "a-b", "a.c", "b", "a/x", "b", "a-b"})
        EXPECT_EQ(cache.get((dir / n).string(), lstat_of(dir / n)), Sha256::hex(n)) << n;
}
