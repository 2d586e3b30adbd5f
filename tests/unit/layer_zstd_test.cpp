// The zstd compressor: a frame per block (gzip.hpp's blocks), the bytes don't depend on the
// thread count or on how the input is cut into writes, zstd(1) reads the concatenated frames
// back, and each frame is what `zstd -3` makes of its block.
#define ZSTD_STATIC_LINKING_ONLY // ZSTD_getFrameHeader
#include "factory/layer/zstd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <cstdio>
#include <gtest/gtest.h>
#include <random>
#include <zstd.h>

namespace factory::layer {
namespace {

std::string sample(std::size_t size, unsigned seed) {
    static const char* words[] = {"layer ",     "tar ",        "digest ",
                                  "sha256 ",    "\n",          "factory ",
                                  "{\"key\": ", "0123456789 ", "/usr/lib/x86_64-linux-gnu/"};
    std::mt19937 rng(seed);
    std::string s;
    s.reserve(size + 32);
    while (s.size() < size) {
        if (rng() % 8 == 0)
            for (int i = 0; i < 16; ++i)
                s.push_back(static_cast<char>(rng()));
        else
            s += words[rng() % std::size(words)];
    }
    s.resize(size);
    return s;
}

struct Compressed {
    std::string bytes;
    BlockReport report;
};

Compressed zstd(const std::string& data, unsigned threads, std::size_t chunk = 0, int level = 3) {
    Compressed out;
    auto c = make_zstd_compressor(
        [&out](std::string_view b) -> Result<void> {
            out.bytes.append(b);
            return {};
        },
        {.level = level, .threads = threads, .report = &out.report});
    EXPECT_TRUE(c) << c.error();
    if (!c) return {};
    std::string_view rest = data;
    while (!rest.empty()) {
        auto n = chunk == 0 ? rest.size() : std::min(chunk, rest.size());
        EXPECT_TRUE((*c)->write(rest.substr(0, n)));
        rest.remove_prefix(n);
    }
    EXPECT_TRUE((*c)->finish());
    return out;
}

// Decodes a stream of frames as a layer reader does (one streaming context, frame after frame).
std::string unzstd(const std::string& frames) {
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> d(ZSTD_createDCtx(), ZSTD_freeDCtx);
    ZSTD_inBuffer in{frames.data(), frames.size(), 0};
    std::string out;
    std::vector<char> buf(ZSTD_DStreamOutSize());
    std::size_t rc = 1;
    while (in.pos < in.size || rc != 0) {
        ZSTD_outBuffer o{buf.data(), buf.size(), 0};
        rc = ZSTD_decompressStream(d.get(), &o, &in);
        EXPECT_FALSE(ZSTD_isError(rc)) << ZSTD_getErrorName(rc);
        if (ZSTD_isError(rc)) break;
        out.append(buf.data(), o.pos);
        if (o.pos == 0 && in.pos == in.size && rc != 0) {
            ADD_FAILURE() << "truncated frame";
            break;
        }
    }
    return out;
}

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

TEST(LayerZstd, SameBytesForAnyThreadCountAndChunking) {
    const std::string data = sample((5 << 20) + 12345, 1); // 5 blocks and a partial one
    const std::string reference = zstd(data, 1).bytes;
    for (unsigned threads : {2u, 8u})
        EXPECT_EQ(zstd(data, threads).bytes, reference) << threads;
    for (std::size_t chunk : {std::size_t{4096}, gzip_block_size + 1})
        EXPECT_EQ(zstd(data, 2, chunk).bytes, reference) << chunk;
    EXPECT_EQ(unzstd(reference), data);
}

// RFC 8878 §3.1.1: each block is one frame, with its content size and a checksum; the map
// lists the frames where they are.
TEST(LayerZstd, AFramePerBlockWithSizeAndChecksum) {
    const std::string data = sample(3 * gzip_block_size + 1000, 2);
    auto c = zstd(data, 2);
    ASSERT_EQ(c.report.map.blocks.size(), 4u);
    EXPECT_EQ(c.report.map.format, zstd_block_format(3));
    std::uint64_t at = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& b = c.report.map.blocks[i];
        EXPECT_EQ(b.offset, at);
        const char* frame = c.bytes.data() + b.offset;
        EXPECT_EQ(ZSTD_findFrameCompressedSize(frame, c.bytes.size() - b.offset), b.size) << i;
        ZSTD_frameHeader h{};
        ASSERT_EQ(ZSTD_getFrameHeader(&h, frame, b.size), 0u);
        EXPECT_EQ(h.checksumFlag, 1u);
        EXPECT_EQ(h.frameContentSize, i < 3 ? gzip_block_size : 1000u) << i;
        at += b.size;
    }
    EXPECT_EQ(at, c.bytes.size());
}

TEST(LayerZstd, EmptyInputIsOneEmptyFrame) {
    const std::string frame = zstd("", 2).bytes;
    EXPECT_EQ(ZSTD_findFrameCompressedSize(frame.data(), frame.size()), frame.size());
    EXPECT_EQ(unzstd(frame), "");
    EXPECT_EQ(zstd("", 1).bytes, frame);
}

// zstd(1) reads the concatenated frames, and `zstd -3` of each block's bytes (a file: its
// size in the header, the checksum on by default) gives that very frame: an independent check
// that the parameters are the ones we claim.
TEST(LayerZstd, ZstdToolAgrees) {
    if (run("zstd --version").second != 0) GTEST_SKIP() << "zstd(1) not available";
    testing::TestDir dir;
    const std::string data = sample((3 << 20) + 777, 3);
    auto ours = zstd(data, 2);
    write_file_atomic(dir / "data.zst", ours.bytes);
    auto [out, status] = run("zstd -q -dc < " + (dir / "data.zst").string());
    EXPECT_EQ(status, 0);
    EXPECT_EQ(out, data);
    ASSERT_EQ(ours.report.map.blocks.size(), 4u); // 1 MiB blocks without cuts
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& b = ours.report.map.blocks[i];
        write_file_atomic(dir / "block", data.substr(i * gzip_block_size, gzip_block_size));
        auto [theirs, status2] = run("zstd -q -3 -c " + (dir / "block").string());
        EXPECT_EQ(status2, 0);
        EXPECT_EQ(Sha256::hex(theirs), Sha256::hex(ours.bytes.substr(b.offset, b.size))) << i;
    }
}

// Random bytes: zstd writes raw blocks itself, so a frame costs a few bytes over its block.
TEST(LayerZstd, IncompressibleBlocksStayTheirSize) {
    std::mt19937 rng(5);
    std::string random(2 * gzip_block_size, '\0');
    for (auto& ch : random)
        ch = static_cast<char>(rng());
    auto c = zstd(random, 2);
    EXPECT_LT(c.bytes.size(), random.size() + 200);
    EXPECT_EQ(unzstd(c.bytes), random);
}

// Pinned to libzstd 1.5.4 (Debian 12), like the gzip output to its libdeflate.
TEST(LayerZstd, PinnedOutputForThePinnedLibzstd) {
    ASSERT_EQ(ZSTD_versionNumber(), 10504u) << "libzstd changed: zstd layer digests will change";
    EXPECT_EQ(zstd_block_format(3), "zstd-frames/1 cut/1 libzstd-1.5.4 level-3");
    EXPECT_EQ(Sha256::hex(zstd(sample(3 << 20, 6), 2).bytes),
              "3859c4de698e8e4e9c97dd55cf8cb8ae85fabc932430841fbc56dea49f35481c");
}

TEST(LayerZstd, BadLevelIsRefused) {
    auto c =
        make_zstd_compressor([](std::string_view) -> Result<void> { return {}; }, {.level = 22});
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), "zstd level must be 1..19, not 22");
}

TEST(LayerZstd, SinkErrorsAreStickyAndReported) {
    auto c = make_zstd_compressor(
        [](std::string_view) -> Result<void> { return Unexpected("disk full"); }, {.threads = 2});
    ASSERT_TRUE(c);
    Result<void> r;
    const std::string data = sample(1 << 20, 4);
    for (int i = 0; i < 32 && r; ++i)
        r = (*c)->write(data);
    if (r) r = (*c)->finish();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "disk full");
    EXPECT_EQ((*c)->finish().error(), "disk full");
}

} // namespace
} // namespace factory::layer
