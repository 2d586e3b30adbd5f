#include "cache/action_store.hpp"
#include "cache/blob_store.hpp"
#include "cache/stats.hpp"
#include "factory/util/files.hpp"
#include "tests/unit/test_dir.hpp"

#include <fstream>
#include <thread>
#include <vector>

using factory::cache::add_stats;
using factory::cache::Counters;
using factory::cache::read_stats;
using factory::cache::Stats;
namespace fs = std::filesystem;

TEST(CacheStats, MissingFileReadsAsZeros) {
    factory::testing::TestDir dir;
    auto s = read_stats(dir.path());
    EXPECT_EQ(s.total, Counters{});
    EXPECT_TRUE(s.kinds.empty());
    EXPECT_FALSE(factory::cache::estimated_store_size(dir.path()));
}

TEST(CacheStats, AddAccumulatesPerKindAndTotal) {
    factory::testing::TestDir dir;
    Stats one;
    one.hit("copy", 100);
    one.miss("run", 5000);
    one.miss("run", 1000);
    add_stats(dir.path(), one);
    Stats two;
    two.hit("run", 6000);
    add_stats(dir.path(), two);

    auto s = read_stats(dir.path());
    EXPECT_EQ(s.total, (Counters{2, 2, 6000, 6100}));
    EXPECT_EQ(s.kinds.at("copy"), (Counters{1, 0, 0, 100}));
    EXPECT_EQ(s.kinds.at("run"), (Counters{1, 2, 6000, 6000}));
    EXPECT_GT(s.since, 0);
    auto text = factory::read_file(dir / "stats.json").value();
    EXPECT_NE(text.find("\"version\": 1"), std::string::npos) << text;
}

TEST(CacheStats, ConcurrentAddsAreNotLost) {
    factory::testing::TestDir dir;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 25; ++i) {
                Stats d;
                d.hit("copy", 1);
                add_stats(dir.path(), d);
            }
        });
    for (auto& t : threads)
        t.join();
    auto s = read_stats(dir.path());
    EXPECT_EQ(s.total.hits, 100u);
    EXPECT_EQ(s.total.bytes_reused, 100u);
}

TEST(CacheStats, GarbageFileReadsAsZerosAndIsReplaced) {
    factory::testing::TestDir dir;
    for (const char* junk : {"", "{", "[1,2]", "{\"version\":1,\"total\":{\"hits\":\"many\"}}",
                             "{\"version\":99,\"total\":{\"hits\":5}}"}) {
        std::ofstream(dir / "stats.json", std::ios::trunc) << junk;
        EXPECT_EQ(read_stats(dir.path()).total, Counters{}) << junk;
    }
    Stats d;
    d.miss("base", 7);
    add_stats(dir.path(), d);
    EXPECT_EQ(read_stats(dir.path()).total, (Counters{0, 1, 7, 0}));
}

TEST(CacheStats, ZeroKeepsTheSizeEstimate) {
    factory::testing::TestDir dir;
    factory::cache::record_store_size(dir.path(), 1000);
    Stats d;
    d.miss("copy", 500);
    add_stats(dir.path(), d);
    EXPECT_EQ(factory::cache::estimated_store_size(dir.path()), 1500u);
    factory::cache::zero_stats(dir.path());
    EXPECT_EQ(read_stats(dir.path()).total, Counters{});
    EXPECT_EQ(factory::cache::estimated_store_size(dir.path()), 1500u);
    factory::cache::record_store_size(dir.path(), 200);
    EXPECT_EQ(factory::cache::estimated_store_size(dir.path()), 200u);
}

TEST(CacheStats, UsageCountsBlobsRecordsAndMounts) {
    factory::testing::TestDir dir;
    fs::create_directories(dir / "blobs/sha256");
    fs::create_directories(dir / "tmp");
    factory::cache::BlobStore blobs(dir / "blobs/sha256", dir / "tmp");
    auto a = blobs.put(std::string(1000, 'a'));
    blobs.put(std::string(500, 'b'));
    factory::cache::ActionStore actions(dir.path(), blobs);
    factory::cache::ActionRecord r;
    r.key = std::string(64, 'c');
    r.blobs = {a};
    actions.put(r);
    fs::create_directories(dir / "mounts/apt/lists");
    std::ofstream(dir / "mounts/apt/lists/x", std::ios::binary) << std::string(300, 'x');
    fs::create_hard_link(dir / "mounts/apt/lists/x", dir / "mounts/apt/y"); // counted once
    std::ofstream(dir / "tmp/.tmp-blob-1-2-3", std::ios::binary) << std::string(70, 't');

    auto u = factory::cache::store_usage(dir.path());
    EXPECT_EQ(u.blobs, 2u);
    EXPECT_EQ(u.blob_bytes, 1500u);
    EXPECT_EQ(u.records, 1u);
    EXPECT_EQ(u.record_bytes, fs::file_size(actions.record_path(r.key)));
    EXPECT_EQ(u.mount_bytes, 300u);
    EXPECT_EQ(u.temp_bytes, 70u);
    EXPECT_EQ(u.prunable_bytes(), 1500u + u.record_bytes);
}

// Every byte of the store is in one part, and the parts add up to the total.
TEST(CacheStats, UsagePartsAddUpToTheTotal) {
    factory::testing::TestDir dir;
    auto put = [&](const fs::path& rel, std::size_t n) {
        fs::create_directories((dir / rel).parent_path());
        std::ofstream(dir / rel, std::ios::binary) << std::string(n, 'x');
    };
    put("snapshots/abc/usr/bin/tool", 100);
    put("git/0123.git/objects/pack/p.pack", 200);
    put("homes/h1/.bashrc", 30);
    put("volumes/data/f", 40);
    put("envs/e1/env.json", 5);
    put("quarantine/bad.1", 7);
    put("statcache/v1", 11);
    put("index.json", 13);
    auto u = factory::cache::store_usage(dir.path());
    EXPECT_EQ(u.snapshot_bytes, 100u);
    EXPECT_EQ(u.git_bytes, 200u);
    EXPECT_EQ(u.shell_bytes, 75u);
    EXPECT_EQ(u.quarantine_bytes, 7u);
    EXPECT_EQ(u.other_bytes, 24u);
    EXPECT_EQ(u.total_bytes(), 100u + 200u + 75u + 7u + 24u);
}

TEST(CacheStats, RemoteHitsAndDownloadsAreKept) {
    factory::testing::TestDir dir;
    Stats d;
    d.hit("run", 10);
    d.remote_hit("run", 4096);
    add_stats(dir.path(), d);
    add_stats(dir.path(), d);
    auto s = read_stats(dir.path());
    EXPECT_EQ(s.total.hits, 2u);
    EXPECT_EQ(s.total.remote_hits, 2u);
    EXPECT_EQ(s.total.bytes_downloaded, 8192u);
    EXPECT_EQ(s.kinds["run"].remote_hits, 2u);
}
