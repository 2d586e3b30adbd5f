// The one layer reader's gzip side (runtime/layer_stream.hpp): members small enough are inflated
// whole (libdeflate), bigger ones are streamed (zlib), and a blob mixing both reads as one
// stream with the right diff_id and digest; a damaged, truncated or trailing member gets the
// same words whichever way it was met.

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "factory/runtime/layer_stream.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

namespace fs = std::filesystem;
using factory::runtime::LayerStream;
using factory::testing::gzip;

namespace {

// Text with some noise: compresses, but not to nothing.
std::string payload(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s;
    s.reserve(n);
    while (s.size() < n)
        s += "line " + std::to_string(rng() % 100000) + " of the layer\n";
    s.resize(n);
    return s;
}

fs::path blob_file(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
}

// Reads the whole stream; the error when there is one.
struct Read {
    std::string bytes, error, diff_id, digest;
};
Read read_all(const fs::path& blob) {
    Read out;
    auto s = LayerStream::open(blob, std::nullopt, {});
    if (!s) return {.bytes = {}, .error = s.error(), .diff_id = {}, .digest = {}};
    for (;;) {
        auto chunk = (*s)->next();
        if (!chunk) {
            out.error = chunk.error();
            return out;
        }
        if (chunk->empty()) break;
        out.bytes += *chunk;
    }
    out.diff_id = (*s)->diff_id();
    out.digest = (*s)->digest();
    return out;
}

} // namespace

TEST(LayerStreamGzip, MembersOfEverySizeReadAsOneStream) {
    factory::testing::TestDir dir;
    // Small members (inflated whole), one of 3 MiB of output (past what is inflated whole:
    // streamed), then small ones again, as a concatenation of blobs would be.
    std::vector<std::string> parts = {payload(100 << 10, 1), payload(1 << 20, 2),
                                      payload(3 << 20, 3), payload(1, 4), payload(200 << 10, 5)};
    std::string blob, tar;
    for (const auto& p : parts) {
        blob += gzip(p);
        tar += p;
    }
    auto r = read_all(blob_file(dir / "layer.gz", blob));
    ASSERT_EQ(r.error, "");
    EXPECT_TRUE(r.bytes == tar) << "the uncompressed stream";
    EXPECT_EQ(r.diff_id, "sha256:" + factory::Sha256::hex(tar));
    EXPECT_EQ(r.digest, "sha256:" + factory::Sha256::hex(blob));
}

TEST(LayerStreamGzip, ABadMemberAfterWholeOnesHasTheStreamingWords) {
    factory::testing::TestDir dir;
    auto good = gzip(payload(300 << 10, 1)) + gzip(payload(300 << 10, 2));
    auto bad = gzip(payload(300 << 10, 3));
    bad[bad.size() / 2] ^= 0x55;
    auto damaged = read_all(blob_file(dir / "damaged.gz", good + bad));
    EXPECT_NE(damaged.error.find(": corrupt gzip data: "), std::string::npos) << damaged.error;
    EXPECT_TRUE(damaged.error.starts_with("layer " + (dir / "damaged.gz").string()))
        << damaged.error;

    auto last = gzip(payload(300 << 10, 4));
    auto truncated =
        read_all(blob_file(dir / "truncated.gz", good + last.substr(0, last.size() - 9)));
    EXPECT_NE(truncated.error.find("truncated gzip stream"), std::string::npos) << truncated.error;

    auto trailing = read_all(blob_file(dir / "trailing.gz", good + "garbage"));
    EXPECT_NE(trailing.error.find("trailing garbage after the gzip stream"), std::string::npos)
        << trailing.error;

    // A member whose trailer lies about its CRC: libdeflate refuses it, so does zlib.
    auto crc = gzip(payload(1000, 5));
    crc[crc.size() - 8] ^= 1;
    auto checked = read_all(blob_file(dir / "crc.gz", good + crc));
    EXPECT_NE(checked.error.find("corrupt gzip data: incorrect data check"), std::string::npos)
        << checked.error;
}
