// Incremental layers, gzip and zstd alike (docs/performance.md "Incremental layers"): members
// (frames) end at content-defined cut points, each is keyed by what made it (its entries, or the
// sha256 of its input), and a writer given the blocks of an earlier layer copies those whose input
// is unchanged, and resumes after the unchanged leading ones without reading them. The cache must
// never change the bytes: a layer written with reuse is the layer written cold, for any thread
// count; an edit leaves every block after the next cut point to be copied.
#include "factory/layer/block_plan.hpp"
#include "factory/layer/block_source.hpp"
#include "factory/layer/gzip.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/layer/zstd.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/sha256_midstate.hpp"
#include "tests/unit/test_dir.hpp"

#include <algorithm>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace factory::layer {
namespace {

namespace fs = std::filesystem;

std::pair<std::string, int> run(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return {"", -1};
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    return {out, ::pclose(p)};
}

// bench/gen_tree.py's tree of FILES files, MB megabytes at root: "" when made, else its output.
std::string generate_tree(const fs::path& root, int files, int mb) {
    auto [log, status] = run("python3 " FACTORY_SOURCE_DIR "/bench/gen_tree.py '" + root.string() +
                             "' " + std::to_string(files) + " " + std::to_string(mb) + " 0 2>&1");
    return status == 0 ? "" : log.empty() ? "gen_tree.py failed" : log;
}

// Every test but the cut rule's runs for both codecs: their blocks are cut, keyed, reused and
// resumed by the same code, only the member (frame) format differs.
class LayerBlocks : public ::testing::TestWithParam<Compression> {};

// ---- the compressor: cut() and reuse -----------------------------------------------------

struct Compressed {
    std::string bytes;
    BlockReport report;
};

// Compresses `data` with `codec` (gzip or zstd) at its default level, calling cut() before
// each offset of `cuts` (sorted).
Compressed compress(Compression codec, std::string_view data, const std::vector<std::size_t>& cuts,
                    unsigned threads, const BlockSource* reuse = nullptr) {
    Compressed out;
    Sink sink = [&out](std::string_view b) -> Result<void> {
        out.bytes.append(b);
        return {};
    };
    BlockOptions options{.threads = threads, .reuse = reuse, .report = &out.report};
    auto c = codec == Compression::zstd ? make_zstd_compressor(std::move(sink), options)
                                        : make_gzip_compressor(std::move(sink), options);
    EXPECT_TRUE(c) << c.error();
    std::size_t at = 0;
    for (auto cut : cuts) {
        EXPECT_TRUE((*c)->write(data.substr(at, cut - at)));
        EXPECT_TRUE((*c)->cut());
        at = cut;
    }
    EXPECT_TRUE((*c)->write(data.substr(at)));
    EXPECT_TRUE((*c)->finish());
    return out;
}

// A BlockSource over `compressed`, written to a file as a layer blob would be.
BlockSource source_of(Compression codec, const fs::path& file, const Compressed& compressed) {
    write_file_atomic(file, compressed.bytes);
    BlockSource source(block_format(codec));
    EXPECT_TRUE(source.add(Fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC)), compressed.report.map));
    return source;
}

std::string text(std::size_t size, unsigned seed) {
    static const char* words[] = {"layer ", "tar ", "digest ", "\n", "factory ", "0123 "};
    std::mt19937 rng(seed);
    std::string s;
    while (s.size() < size) {
        s += words[rng() % std::size(words)];
        if (rng() % 16 == 0) s.push_back(static_cast<char>(rng()));
    }
    s.resize(size);
    return s;
}

TEST_P(LayerBlocks, CutEndsABlockOnlyPastTheMinimum) {
    const Compression codec = GetParam();
    std::string data = text(3 * gzip_block_size, 1);
    auto small = compress(codec, data, {gzip_min_cut - 1}, 1);
    ASSERT_EQ(small.report.map.blocks.size(), 3u); // ignored: 1 MiB blocks as without cuts
    auto cut = compress(codec, data, {gzip_min_cut, gzip_min_cut + 1000, 2 * gzip_block_size}, 2);
    // [0, 512K) [512K, 1.5M) [1.5M, 2M) [2M, 3M) (MiB): the second cut came too soon after the
    // first, and the block it was in ended at 1 MiB.
    ASSERT_EQ(cut.report.map.blocks.size(), 4u);
    std::uint64_t at = 0;
    for (const auto& b : cut.report.map.blocks) {
        EXPECT_EQ(b.offset, at);
        at += b.size;
    }
    EXPECT_EQ(at, cut.bytes.size());
    EXPECT_EQ(cut.report.map.format, block_format(codec));
    EXPECT_EQ(
        compress(codec, data, {gzip_min_cut, gzip_min_cut + 1000, 2 * gzip_block_size}, 8).bytes,
        cut.bytes);
}

// An edit at a position changes the blocks from the cut before it to the cut after it; the
// rest are copied, and the stream is the one compressing gives.
TEST_P(LayerBlocks, ReuseGivesTheColdBytesAndCopiesTheUnchangedBlocks) {
    const Compression codec = GetParam();
    testing::TestDir dir;
    std::string data = text(8 * gzip_block_size, 2);
    // Cuts 800 KB apart: each block is the bytes between two cuts.
    std::vector<std::size_t> cuts, shifted;
    for (std::size_t at = 700'000; at < data.size(); at += 800'000) {
        cuts.push_back(at);
        shifted.push_back(at > 3'000'000 ? at + 13 : at);
    }
    auto before = compress(codec, data, cuts, 2);
    ASSERT_EQ(before.report.map.blocks.size(), cuts.size() + 1);
    auto source = source_of(codec, dir / "blob", before);
    std::string edited = data;
    edited.insert(3'000'000, "a grown line\n"); // in the block [2.3 MB, 3.1 MB)
    auto cold = compress(codec, edited, shifted, 1);
    for (unsigned threads : {1u, 2u, 8u}) {
        auto warm = compress(codec, edited, shifted, threads, &source);
        EXPECT_EQ(warm.bytes, cold.bytes) << threads;
        EXPECT_EQ(warm.report.map.blocks.size(), cold.report.map.blocks.size());
        EXPECT_EQ(warm.report.reused, cold.report.map.blocks.size() - 1) << threads;
        EXPECT_EQ(warm.report.reused_input_bytes, edited.size() - 800'013) << threads;
    }
    // Without the source, nothing is reused.
    EXPECT_EQ(cold.report.reused, 0u);
}

// A map that names the wrong bytes (another input's member) is not trusted: the member is
// checked against the input (a gzip trailer's CRC-32 and size, a zstd frame decompressed),
// and the block is compressed instead.
TEST_P(LayerBlocks, ALyingMapIsNotUsed) {
    const Compression codec = GetParam();
    testing::TestDir dir;
    std::string a = text(2 * gzip_block_size, 3), b = text(2 * gzip_block_size, 4);
    auto ca = compress(codec, a, {}, 1), cb = compress(codec, b, {}, 1);
    auto lying = cb.report.map;
    for (std::size_t i = 0; i < lying.blocks.size(); ++i)
        lying.blocks[i].key = ca.report.map.blocks[i].key; // a's keys on b's bytes
    write_file_atomic(dir / "blob", cb.bytes);
    BlockSource source(block_format(codec));
    ASSERT_TRUE(source.add(Fd(::open((dir / "blob").c_str(), O_RDONLY)), lying));
    auto again = compress(codec, a, {}, 2, &source);
    EXPECT_EQ(again.bytes, ca.bytes);
    EXPECT_EQ(again.report.reused, 0u);
    // And a map of another format is refused whole.
    BlockSource other(block_format(codec, 9));
    EXPECT_FALSE(other.add(Fd(::open((dir / "blob").c_str(), O_RDONLY)), cb.report.map));
}

// The hostile corpus as byte streams with cuts every 600 KB: cold and reused the same bytes
// for 1, 2 and 8 threads, after an edit in the middle.
TEST_P(LayerBlocks, HostileCorpusColdAndReusedAlike) {
    const Compression codec = GetParam();
    testing::TestDir dir;
    auto out = dir / "layers";
    auto [log, status] = run("python3 " FACTORY_SOURCE_DIR "/tests/data/make-hostile-layers.py '" +
                             out.string() + "' '" + (dir / "sentinel").string() + "' 2>&1");
    ASSERT_EQ(status, 0) << log;
    std::size_t cases = 0;
    for (const auto& file : fs::directory_iterator(out)) {
        auto name = file.path().filename().string();
        if (!name.ends_with(".tar") && !name.ends_with(".tar.gz")) continue;
        std::ifstream in(file.path(), std::ios::binary);
        std::string data((std::istreambuf_iterator<char>(in)), {});
        std::string big;
        while (big.size() < 4 * gzip_block_size)
            big += data.empty() ? std::string(4096, '\0') : data;
        std::vector<std::size_t> cuts;
        for (std::size_t at = 600'000; at < big.size(); at += 600'000)
            cuts.push_back(at);
        auto before = compress(codec, big, cuts, 2);
        auto source = source_of(codec, dir / "blob", before);
        std::string edited = big;
        edited[big.size() / 2] ^= 1;
        auto cold = compress(codec, edited, cuts, 1);
        for (unsigned threads : {1u, 2u, 8u}) {
            auto warm = compress(codec, edited, cuts, threads, &source);
            EXPECT_EQ(warm.bytes, cold.bytes) << name << " " << threads;
            EXPECT_GE(warm.report.reused + 2, cold.report.map.blocks.size()) << name;
        }
        ++cases;
    }
    EXPECT_GT(cases, 10u);
}

// ---- the layer writer: the cut rule on a real tree -----------------------------------------

std::vector<Entry> entries_of(const fs::path& root) {
    std::vector<Entry> out;
    for (const auto& item : fs::recursive_directory_iterator(root)) {
        struct stat st {};
        if (::lstat(item.path().c_str(), &st) != 0) continue;
        Entry e;
        e.path = item.path().lexically_relative(root).string();
        e.mode = st.st_mode & 07777;
        if (S_ISDIR(st.st_mode)) {
            e.type = Entry::Type::dir;
        } else if (S_ISREG(st.st_mode)) {
            e.source = item.path().string();
            e.size = static_cast<std::uint64_t>(st.st_size);
        } else {
            continue;
        }
        out.push_back(std::move(e));
    }
    return out;
}

struct Written {
    LayerInfo info;
    std::string bytes;
};

Written write(Compression codec, const fs::path& file, const std::vector<Entry>& entries,
              unsigned threads, const BlockSource* reuse = nullptr) {
    Fd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto info = write_layer(
        entries, {.epoch = 1, .compression = codec, .threads = threads, .reuse = reuse}, fd.get());
    EXPECT_TRUE(info) << info.error();
    return {info.value_or(LayerInfo{}), read_file(file, std::uint64_t{1} << 30).value()};
}

// The sorted regular files of a tree, to pick edits at the start, middle and end.
std::vector<fs::path> files_of(const fs::path& root) {
    std::vector<fs::path> out;
    for (const auto& item : fs::recursive_directory_iterator(root))
        if (item.is_regular_file()) out.push_back(item.path());
    std::sort(out.begin(), out.end(), [&](const fs::path& a, const fs::path& b) {
        return path_less(a.lexically_relative(root).string(), b.lexically_relative(root).string());
    });
    return out;
}

void append(const fs::path& file, std::string_view bytes) {
    std::ofstream(file, std::ios::binary | std::ios::app) << bytes;
}

// bench/gen_tree.py at a small size: each edit, written with the blocks of the layer before
// it, gives the blob of a cold write of the edited tree (for 1, 2 and 8 threads), and copies
// all but a few blocks.
TEST_P(LayerBlocks, CopyHeavyTreeEditsGiveTheColdLayer) {
    const Compression codec = GetParam();
    testing::TestDir dir;
    auto root = dir / "root";
    ASSERT_EQ(generate_tree(root, 1500, 12), "");
    auto files = files_of(root);
    ASSERT_GT(files.size(), 1000u);
    auto before = write(codec, dir / "before", entries_of(root), 2);
    ASSERT_GT(before.info.blocks.blocks.size(), 8u);
    struct Edit {
        std::string name;
        std::function<void()> apply;
    };
    std::vector<Edit> edits = {
        {"start", [&] { append(files[1], "x"); }},
        {"middle", [&] { append(files[files.size() / 2], "one more line\n"); }},
        {"end", [&] { append(files.back(), "y"); }},
        {"grow", [&] { append(files[files.size() / 3], std::string(300'000, 'g')); }},
        {"shrink", [&] { fs::resize_file(files[2 * files.size() / 3], 10); }},
        {"add", [&] { write_file_atomic(files[files.size() / 4].string() + "-new", "new\n"); }},
        {"remove", [&] { fs::remove(files[3 * files.size() / 4]); }},
    };
    for (const auto& edit : edits) {
        auto blob = dir / "previous";
        write_file_atomic(blob, before.bytes);
        BlockSource source(block_format(codec));
        ASSERT_TRUE(source.add(Fd(::open(blob.c_str(), O_RDONLY)), before.info.blocks));
        edit.apply();
        auto entries = entries_of(root);
        auto cold = write(codec, dir / "cold", entries, 1);
        for (unsigned threads : {1u, 2u, 8u}) {
            auto warm = write(codec, dir / "warm", entries, threads, &source);
            EXPECT_EQ(warm.info.digest, cold.info.digest) << edit.name << " " << threads;
            EXPECT_EQ(warm.info.diff_id, cold.info.diff_id) << edit.name;
            EXPECT_EQ(warm.bytes, cold.bytes) << edit.name << " " << threads;
            // A few blocks around the edit are new (the grown file spans its own).
            std::size_t fresh = warm.info.blocks.blocks.size() - warm.info.blocks_reused;
            EXPECT_LE(fresh, edit.name == "grow" ? 4u : 3u) << edit.name;
            EXPECT_GE(fresh, 1u) << edit.name;
        }
        before = std::move(cold);
    }
}

// ---- keys from the entries, and resuming after the unchanged blocks -----------------------

// entries_of, with each file's content digest known, as a copy step gives it (the stat cache).
std::vector<Entry> keyed_entries_of(const fs::path& root) {
    auto entries = entries_of(root);
    for (auto& e : entries)
        if (!e.source.empty()) e.sha256 = sha256_file(e.source).value();
    return entries;
}

BlockSource source_of_blob(Compression codec, const fs::path& blob, const Written& previous) {
    write_file_atomic(blob, previous.bytes);
    BlockSource source(block_format(codec));
    EXPECT_TRUE(source.add(Fd(::open(blob.c_str(), O_RDONLY)), previous.info.blocks));
    return source;
}

// The blocks the writer made are those planned from the entries alone: same ends, and the
// planned keys, so a rebuild can compare keys without reading a file.
TEST_P(LayerBlocks, PlannedBlocksAreTheWrittenOnes) {
    const Compression codec = GetParam();
    testing::TestDir dir;
    auto root = dir / "root";
    ASSERT_EQ(generate_tree(root, 1500, 12), "");
    auto entries = keyed_entries_of(root);
    auto written = write(codec, dir / "layer", entries, 2);
    auto plan = plan_gzip_blocks(sort_entries(entries).value(), 1);
    ASSERT_TRUE(plan) << plan.error();
    const auto& blocks = written.info.blocks.blocks;
    ASSERT_EQ(plan->size(), blocks.size());
    ASSERT_TRUE(cache::has_midstates(written.info.blocks));
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        EXPECT_EQ((*plan)[i].key, blocks[i].key) << i;
        EXPECT_EQ((*plan)[i].input_end, blocks[i].input_end) << i;
        EXPECT_EQ((*plan)[i].key.size(), 64u);
    }
    // The last block's midstates are those of the whole streams.
    auto tar =
        ResumableSha256(*Sha256Midstate::parse(blocks.back().input_state, blocks.back().input_end));
    EXPECT_EQ("sha256:" + tar.hex_digest(), written.info.diff_id);
    auto blob =
        ResumableSha256(*Sha256Midstate::parse(blocks.back().blob_state, written.bytes.size()));
    EXPECT_EQ("sha256:" + blob.hex_digest(), written.info.digest);
    // Without digests a file's blocks have no planned key: they are keyed by their bytes.
    auto unkeyed = write(codec, dir / "unkeyed", entries_of(root), 2);
    EXPECT_EQ(unkeyed.bytes, written.bytes);
    EXPECT_NE(unkeyed.info.blocks.blocks[1].key, blocks[1].key);
    EXPECT_EQ(unkeyed.info.diff_id, written.info.diff_id);

    // A git step's files are named by blob id instead (a 40-hex stand-in here): their blocks
    // are planned too, under other keys than the sha256s give; the bytes are the same.
    auto by_id = entries_of(root);
    for (auto& e : by_id)
        if (!e.source.empty())
            e.content_id = "git-blob:" + sha256_file(e.source).value().substr(0, 40);
    auto id_plan = plan_gzip_blocks(sort_entries(by_id).value(), 1);
    ASSERT_TRUE(id_plan) << id_plan.error();
    auto id_written = write(codec, dir / "by-id", by_id, 2);
    EXPECT_EQ(id_written.bytes, written.bytes);
    ASSERT_EQ(id_plan->size(), blocks.size());
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        EXPECT_EQ((*id_plan)[i].key, id_written.info.blocks.blocks[i].key) << i;
        EXPECT_EQ((*id_plan)[i].key.size(), 64u) << i;
        EXPECT_NE((*id_plan)[i].key, (*plan)[i].key) << i;
    }
    // Another id for one file changes the key of its block alone; a malformed id gives none.
    auto sorted = sort_entries(by_id).value();
    std::size_t last_file = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i)
        if (!sorted[i].source.empty()) last_file = i;
    sorted[last_file].content_id = "git-blob:" + std::string(40, 'a');
    auto moved = plan_gzip_blocks(sorted, 1).value();
    EXPECT_NE(moved.back().key, id_plan->back().key);
    EXPECT_EQ(moved.front().key, id_plan->front().key);
    sorted[last_file].content_id = "git-blob:abc";
    EXPECT_EQ(plan_gzip_blocks(sorted, 1).value().back().key, "");
}

// Each edit, written with the previous layer, resumes after its unchanged leading blocks (not
// reading those files) and still gives the cold layer of the edited tree, for 1, 2 and 8
// threads: start, middle and end of the tree, a file that grows, one that shrinks, one added,
// one removed.
TEST_P(LayerBlocks, ResumedLayersAreTheColdOnes) {
    const Compression codec = GetParam();
    testing::TestDir dir;
    auto root = dir / "root";
    ASSERT_EQ(generate_tree(root, 1500, 12), "");
    auto files = files_of(root);
    auto before = write(codec, dir / "before", keyed_entries_of(root), 2);
    std::uint64_t tar_size = before.info.blocks.blocks.back().input_end;
    struct Edit {
        std::string name;
        std::function<void()> apply;
        double at; // where the edit is, as a fraction of the tree
    };
    std::vector<Edit> edits = {
        {"start", [&] { append(files[1], "x"); }, 0},
        {"middle", [&] { append(files[files.size() / 2], "one more line\n"); }, 0.5},
        {"end", [&] { append(files.back(), "y"); }, 1},
        {"grow", [&] { append(files[files.size() / 3], std::string(300'000, 'g')); }, 0.33},
        {"shrink", [&] { fs::resize_file(files[2 * files.size() / 3], 10); }, 0.66},
        {"add", [&] { write_file_atomic(files[files.size() / 4].string() + "-new", "new\n"); },
         0.25},
        {"remove", [&] { fs::remove(files[3 * files.size() / 4]); }, 0.75},
    };
    for (const auto& edit : edits) {
        auto source = source_of_blob(codec, dir / "previous", before);
        edit.apply();
        auto entries = keyed_entries_of(root);
        auto cold = write(codec, dir / "cold", entries, 1);
        for (unsigned threads : {1u, 2u, 8u}) {
            auto warm = write(codec, dir / "warm", entries, threads, &source);
            EXPECT_EQ(warm.info.digest, cold.info.digest) << edit.name << " " << threads;
            EXPECT_EQ(warm.info.diff_id, cold.info.diff_id) << edit.name;
            EXPECT_EQ(warm.bytes, cold.bytes) << edit.name << " " << threads;
            EXPECT_EQ(serialize_block_map(warm.info.blocks), serialize_block_map(cold.info.blocks))
                << edit.name;
            std::size_t fresh = warm.info.blocks.blocks.size() - warm.info.blocks_reused;
            EXPECT_LE(fresh, edit.name == "grow" ? 4u : 3u) << edit.name;
            // What was skipped ends within ~2 blocks of the edit (a resume point is an entry
            // boundary at a block's end).
            double skipped = double(warm.info.skipped_input_bytes) / double(tar_size);
            EXPECT_LE(skipped, edit.at + 0.01) << edit.name;
            EXPECT_GE(skipped + 3.0 * gzip_block_size / double(tar_size), edit.at) << edit.name;
        }
        before = std::move(cold);
    }
}

// Damage to the previous layer or its map costs only the resume: the layer written is the
// cold one, and nothing is skipped.
TEST_P(LayerBlocks, ADamagedPreviousLayerOnlyCostsTheResume) {
    const Compression codec = GetParam();
    testing::TestDir dir;
    auto root = dir / "root";
    ASSERT_EQ(generate_tree(root, 600, 5), "");
    auto files = files_of(root);
    auto before = write(codec, dir / "before", keyed_entries_of(root), 2);
    ASSERT_GT(before.info.blocks.blocks.size(), 3u);
    append(files.back(), "changed");
    auto entries = keyed_entries_of(root);
    auto cold = write(codec, dir / "cold", entries, 1);
    // A rebuild from the damaged previous layer: the cold bytes, nothing skipped.
    auto rebuilt_cold = [&](const std::string& name, const auto& previous) {
        auto source = source_of_blob(codec, dir / name, previous);
        auto warm = write(codec, dir / "warm", entries, 2, &source);
        EXPECT_EQ(warm.info.skipped_input_bytes, 0u) << name;
        EXPECT_EQ(warm.bytes, cold.bytes) << name;
        return warm;
    };
    {
        auto source = source_of_blob(codec, dir / "ok", before);
        auto warm = write(codec, dir / "warm", entries, 2, &source);
        EXPECT_GT(warm.info.skipped_input_bytes, 0u); // the undamaged case does resume
        EXPECT_EQ(warm.bytes, cold.bytes);
    }
    {
        // A flipped byte in the old blob's prefix: its hash is not the map's midstate.
        auto damaged = before;
        damaged.bytes[damaged.bytes.size() / 4] ^= 0x20;
        EXPECT_EQ(rebuilt_cold("flipped", damaged).info.digest, cold.info.digest);
    }
    {
        // A blob cut short.
        auto damaged = before;
        damaged.bytes.resize(damaged.bytes.size() / 8);
        rebuilt_cold("short", damaged);
    }
    {
        // Midstates that parse but are another stream's, or don't parse.
        auto lying = before;
        for (auto& b : lying.info.blocks.blocks)
            b.blob_state =
                cold.info.blocks.blocks.back().blob_state.substr(0, 65) + b.blob_state.substr(65);
        rebuilt_cold("lying", lying);
        auto garbled = before;
        for (auto& b : garbled.info.blocks.blocks)
            b.input_state = b.input_state.substr(0, 64) + ".00";
        rebuilt_cold("garbled", garbled);
    }
    {
        // A version 1 map (no midstates) is still a source of blocks, never of a resume.
        auto old = before;
        for (auto& b : old.info.blocks.blocks) {
            b.input_end = 0;
            b.input_state.clear();
            b.blob_state.clear();
        }
        auto text = serialize_block_map(old.info.blocks);
        ASSERT_TRUE(text.starts_with("factory-blocks 1\n"));
        auto parsed = cache::parse_block_map(text);
        ASSERT_TRUE(parsed) << parsed.error();
        old.info.blocks = *parsed;
        EXPECT_GT(rebuilt_cold("v1", old).info.blocks_reused, 0u);
    }
}

// The cut rule itself is pinned: it decides the bytes of every gzip and zstd layer. The figures are
// Python's: [i for i in range(3200) if sha256(b"factory-cut/1\0usr/share/doc/f%d" % i)
// .digest()[0] % 32 == 0] has 96 items, starting 20, 21, 152.
TEST(LayerCutRule, IsPinned) {
    std::size_t hits = 0;
    std::string first;
    for (int i = 0; i < 3200; ++i) {
        auto path = "usr/share/doc/f" + std::to_string(i);
        if (cut_before(path)) {
            if (first.empty()) first = path;
            ++hits;
        }
    }
    EXPECT_EQ(hits, 96u);
    EXPECT_EQ(first, "usr/share/doc/f20");
    EXPECT_TRUE(cut_before("usr/share/doc/f152"));
    EXPECT_FALSE(cut_before("usr/share/doc/f151"));
}

INSTANTIATE_TEST_SUITE_P(Codecs, LayerBlocks,
                         ::testing::Values(Compression::gzip, Compression::zstd),
                         [](const auto& info) {
                             return info.param == Compression::zstd ? "zstd" : "gzip";
                         });

} // namespace
} // namespace factory::layer
