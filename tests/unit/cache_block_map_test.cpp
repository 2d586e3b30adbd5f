// Block maps (cache/block_map.hpp): the file format round-trips and refuses a truncated or
// edited file; tiling is checked against the blob; `cache prune` removes the maps of removed
// or missing blobs (and keeps the others); `cache verify` reports and repairs bad maps.
#include "cache/block_map.hpp"
#include "cache/gc.hpp"
#include "cache/verify.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/sha256_midstate.hpp"
#include "tests/unit/test_dir.hpp"

#include <gtest/gtest.h>

namespace factory::cache {
namespace {

namespace fs = std::filesystem;

BlockMap map_of(std::uint64_t size, std::uint64_t parts) {
    BlockMap map{.format = "gzip-members/1 cut/1 libdeflate-1.14 level-6", .blocks = {}};
    for (std::uint64_t i = 0, at = 0; i < parts; ++i) {
        std::uint64_t n = i + 1 == parts ? size - at : size / parts;
        map.blocks.push_back({Sha256::hex(std::to_string(i)), at, n});
        at += n;
    }
    return map;
}

TEST(CacheBlockMap, RoundTripsAndRefusesDamage) {
    auto map = map_of(1000, 3);
    auto text = serialize_block_map(map);
    EXPECT_TRUE(text.starts_with("factory-blocks 1\nformat gzip-members/1 cut/1 libdeflate-1.14 "
                                 "level-6\n" +
                                 Sha256::hex("0") + " 0 333\n"));
    auto back = parse_block_map(text);
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ(back->format, map.format);
    ASSERT_EQ(back->blocks.size(), 3u);
    EXPECT_EQ(back->blocks[2].key, map.blocks[2].key);
    EXPECT_EQ(back->blocks[2].offset, 666u);
    EXPECT_EQ(back->blocks[2].size, 334u);

    EXPECT_EQ(parse_block_map(text.substr(0, text.size() - 10)).error(), "truncated (no end line)");
    auto edited = text;
    edited[edited.find(" 333\n") + 1] = '4';
    EXPECT_EQ(parse_block_map(edited).error(), "checksum mismatch (edited or corrupt)");
    EXPECT_FALSE(parse_block_map("factory-blocks 3\n"));
}

// Version 2: each block with the input's end and both SHA-256 midstates; the last blob state
// must finish to the blob's digest.
TEST(CacheBlockMap, MidstatesRoundTripAndAreChecked) {
    std::string blob = std::string(1000, 'b'), tar = std::string(3 * 512, 't');
    auto map = map_of(blob.size(), 3);
    ResumableSha256 in, out;
    for (std::size_t i = 0; i < 3; ++i) {
        auto& b = map.blocks[i];
        in.update(tar.substr(i * 512, 512));
        out.update(blob.substr(b.offset, b.size));
        b.input_end = (i + 1) * 512;
        b.input_state = in.state().text();
        b.blob_state = out.state().text();
    }
    auto text = serialize_block_map(map);
    ASSERT_TRUE(text.starts_with("factory-blocks 2\n"));
    auto back = parse_block_map(text);
    ASSERT_TRUE(back) << back.error();
    ASSERT_TRUE(has_midstates(*back));
    EXPECT_EQ(back->blocks[1].input_end, 1024u);
    EXPECT_EQ(back->blocks[2].blob_state, map.blocks[2].blob_state);
    EXPECT_TRUE(check_block_midstates(*back, Sha256::hex(blob)));
    EXPECT_EQ(check_block_midstates(*back, Sha256::hex("another blob")).error(),
              "the last block's blob state is not that of the blob's bytes");

    auto shrinking = map;
    shrinking.blocks[2].input_end = 512;
    EXPECT_EQ(parse_block_map(serialize_block_map(shrinking)).error(),
              "line 5: the input end does not grow");
    auto bad = map;
    bad.blocks[0].input_state = "zz";
    EXPECT_EQ(parse_block_map(serialize_block_map(bad)).error(), "line 3: bad SHA-256 state");
    // A map with a block lacking states is written as version 1, and reads back without them.
    auto partial = map;
    partial.blocks[1].blob_state.clear();
    auto v1 = parse_block_map(serialize_block_map(partial));
    ASSERT_TRUE(v1) << v1.error();
    EXPECT_FALSE(has_midstates(*v1));
    EXPECT_TRUE(check_block_midstates(*v1, Sha256::hex("anything")));
}

TEST(CacheBlockMap, TilingIsCheckedAgainstTheBlob) {
    EXPECT_TRUE(check_block_tiling(map_of(1000, 3), 1000));
    EXPECT_EQ(check_block_tiling(map_of(1000, 3), 1001).error(),
              "the blocks cover 1000 of the blob's 1001 bytes");
    auto gap = map_of(1000, 3);
    gap.blocks[1].offset += 1;
    EXPECT_FALSE(check_block_tiling(gap, 1000));
    EXPECT_FALSE(check_block_tiling(map_of(1000, 3), 999));
}

struct Store {
    testing::TestDir dir;
    BlobStore blobs{make()};
    BlockMaps maps{dir.path()};

    BlobStore make() {
        fs::create_directories(dir / "blobs/sha256");
        fs::create_directories(dir / "tmp");
        return BlobStore(dir / "blobs/sha256", dir / "tmp");
    }
    // A blob with a map of two blocks.
    std::string mapped_blob(const std::string& content) {
        auto hex = blobs.put(content);
        maps.put(hex, map_of(content.size(), 2));
        return hex;
    }
};

TEST(CacheBlockMap, PruneRemovesTheMapsOfRemovedAndMissingBlobs) {
    Store s;
    auto kept = s.mapped_blob("a layer a ref needs");
    auto unreachable = s.mapped_blob("a layer nothing needs");
    auto gone = Sha256::hex("a blob removed by hand");
    s.maps.put(gone, map_of(10, 2));
    auto wrong = s.blobs.put("a blob whose map is of another size");
    s.maps.put(wrong, map_of(5, 2));

    PruneOptions dry;
    dry.dry_run = true;
    RootBlobs roots = [&] { return std::vector<std::string>{kept, wrong}; };
    auto preview = prune(s.dir.path(), s.blobs, dry, roots);
    EXPECT_EQ(preview.block_maps_removed, 3u);
    EXPECT_TRUE(fs::exists(s.maps.path(gone)));

    auto report = prune(s.dir.path(), s.blobs, {}, roots);
    EXPECT_EQ(report.block_maps_removed, 3u);
    EXPECT_EQ(report.block_maps_kept, 1u);
    std::vector<std::string> reasons;
    for (const auto& item : report.items)
        if (item.kind == "blocks") reasons.push_back(item.name + " " + item.reason);
    std::sort(reasons.begin(), reasons.end());
    std::vector<std::string> expected = {gone + " its blob is gone",
                                         unreachable + " its blob is removed",
                                         wrong + " does not match its blob"};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(reasons, expected);
    EXPECT_EQ(s.maps.list(), std::vector<std::string>{kept});
    EXPECT_TRUE(s.blobs.has(kept));
    EXPECT_FALSE(s.blobs.has(unreachable));
}

TEST(CacheBlockMap, VerifyReportsAndRepairsBadMaps) {
    Store s;
    auto good = s.mapped_blob("a sound layer");
    auto bad = s.mapped_blob("a layer whose map is damaged");
    auto text = read_file(s.maps.path(bad)).value();
    text[text.size() - 5] ^= 1;
    write_file_atomic(s.maps.path(bad), text);
    auto orphan = Sha256::hex("no such blob");
    s.maps.put(orphan, map_of(10, 2));

    auto report = verify(s.dir.path(), s.blobs, {}, {});
    EXPECT_FALSE(report.clean());
    EXPECT_EQ(report.block_maps_checked, 3u);
    auto bad_maps = report.bad_block_maps;
    std::sort(bad_maps.begin(), bad_maps.end());
    std::vector<std::string> expected = {bad, orphan};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(bad_maps, expected);
    bool named = false;
    for (const auto& p : report.problems)
        named |= p.starts_with("block map of blob sha256:" + orphan + " is of a missing blob");
    EXPECT_TRUE(named);

    VerifyOptions repair;
    repair.repair = true;
    auto repaired = verify(s.dir.path(), s.blobs, {}, repair);
    EXPECT_EQ(repaired.repairs.size(), 2u);
    EXPECT_TRUE(verify(s.dir.path(), s.blobs, {}, {}).clean());
    EXPECT_EQ(s.maps.list(), std::vector<std::string>{good});
}

} // namespace
} // namespace factory::cache
