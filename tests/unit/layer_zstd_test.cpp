// The zstd compressor: the bytes don't depend on the number of workers or on how the input is
// cut into writes, and zstd(1) reads the frame back (and writes the same bytes itself).
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

std::string zstd(const std::string& data, unsigned workers, std::size_t chunk = 0, int level = 3) {
    std::string out;
    auto c = make_zstd_compressor(
        [&out](std::string_view b) -> Result<void> {
            out.append(b);
            return {};
        },
        {.level = level, .workers = workers});
    EXPECT_TRUE(c) << c.error();
    if (!c) return "";
    std::string_view rest = data;
    while (!rest.empty()) {
        auto n = chunk == 0 ? rest.size() : std::min(chunk, rest.size());
        EXPECT_TRUE((*c)->write(rest.substr(0, n)));
        rest.remove_prefix(n);
    }
    EXPECT_TRUE((*c)->finish());
    return out;
}

std::string unzstd(const std::string& frame) {
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> d(ZSTD_createDCtx(), ZSTD_freeDCtx);
    ZSTD_inBuffer in{frame.data(), frame.size(), 0};
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

// 20 MiB spans several multithreading jobs (8 MiB each at level 3), so job boundaries and
// the overlap between jobs are exercised.
TEST(LayerZstd, SameBytesForAnyWorkerCountAndChunking) {
    const std::string data = sample(20 << 20, 1);
    const std::string reference = zstd(data, 1);
    for (unsigned workers : {2u, 4u})
        EXPECT_EQ(zstd(data, workers), reference) << workers;
    for (std::size_t chunk : {std::size_t{4096}, std::size_t{(1 << 20) + 1}})
        EXPECT_EQ(zstd(data, 2, chunk), reference) << chunk;
    EXPECT_EQ(unzstd(reference), data);
}

TEST(LayerZstd, FrameHasAChecksumAndNoContentSize) {
    const std::string frame = zstd(sample(100000, 2), 2);
    ZSTD_frameHeader h{};
    ASSERT_EQ(ZSTD_getFrameHeader(&h, frame.data(), frame.size()), 0u);
    EXPECT_EQ(h.checksumFlag, 1u);
    EXPECT_EQ(h.frameContentSize, ZSTD_CONTENTSIZE_UNKNOWN);
}

TEST(LayerZstd, EmptyInput) {
    const std::string frame = zstd("", 2);
    EXPECT_EQ(unzstd(frame), "");
    EXPECT_EQ(zstd("", 1), frame);
}

// zstd(1) reads our frames, and compressing a pipe with our parameters (level 3, one worker in
// multithreaded mode, checksum on, 2 MiB jobs: -B2097152) gives the very same bytes: an
// independent check that the parameters are the ones we claim.
TEST(LayerZstd, ZstdToolAgrees) {
    if (run("zstd --version").second != 0) GTEST_SKIP() << "zstd(1) not available";
    testing::TestDir dir;
    const std::string data = sample(10 << 20, 3);
    const std::string ours = zstd(data, 2);
    write_file_atomic(dir / "data", data);
    write_file_atomic(dir / "data.zst", ours);
    auto [out, status] = run("zstd -q -dc < " + (dir / "data.zst").string());
    EXPECT_EQ(status, 0);
    EXPECT_EQ(out, data);
    auto [theirs, status2] = run("cat " + (dir / "data").string() + " | zstd -q -3 -B2097152 -c");
    EXPECT_EQ(status2, 0);
    EXPECT_EQ(Sha256::hex(theirs), Sha256::hex(ours));
}

// Pinned to libzstd 1.5.4 (Debian 12), like the gzip output to its zlib.
TEST(LayerZstd, PinnedOutputForThePinnedLibzstd) {
    ASSERT_EQ(ZSTD_versionNumber(), 10504u) << "libzstd changed: zstd layer digests will change";
    EXPECT_EQ(Sha256::hex(zstd(sample(1 << 20, 6), 2)),
              "168f7c20f45b746a670b9d77ea199d2697d7c77f3247e9c3c6db098109469775");
}

TEST(LayerZstd, BadLevelIsRefused) {
    auto c =
        make_zstd_compressor([](std::string_view) -> Result<void> { return {}; }, {.level = 22});
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), "zstd level must be 1..19, not 22");
}

TEST(LayerZstd, SinkErrorsAreStickyAndReported) {
    auto c = make_zstd_compressor(
        [](std::string_view) -> Result<void> { return Unexpected("disk full"); }, {});
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
