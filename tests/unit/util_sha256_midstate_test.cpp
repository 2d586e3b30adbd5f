// A SHA-256 stopped at any point, saved as text and resumed elsewhere gives the digest of the
// whole stream: the layer writer resumes the diff_id and blob digest of a rebuilt layer this
// way, so the digest must be the one-shot one to the bit.
#include "factory/util/sha256.hpp"
#include "factory/util/sha256_midstate.hpp"
#include "tests/unit/test_util.hpp"

#include <gtest/gtest.h>
#include <random>

namespace factory {
namespace {

using factory::testing::random_bytes;

TEST(Sha256Midstate, ResumedFromTextGivesTheOneShotDigest) {
    std::string data = random_bytes(5000, 1);
    for (std::size_t split : {0u, 1u, 55u, 63u, 64u, 65u, 127u, 128u, 1000u, 4999u, 5000u}) {
        ResumableSha256 first;
        first.update(data.substr(0, split));
        auto saved = first.state();
        EXPECT_EQ(saved.bytes, split);
        EXPECT_EQ(saved.tail.size(), split % 64);
        auto parsed = Sha256Midstate::parse(saved.text(), split);
        ASSERT_TRUE(parsed) << parsed.error();
        EXPECT_EQ(*parsed, saved);
        ResumableSha256 second(*parsed);
        EXPECT_EQ(second.bytes(), split);
        second.update(data.substr(split));
        EXPECT_EQ(second.hex_digest(), Sha256::hex(data)) << split;
        EXPECT_EQ(first.hex_digest(), Sha256::hex(data.substr(0, split))) << split;
    }
}

TEST(Sha256Midstate, KnownDigests) {
    ResumableSha256 empty;
    EXPECT_EQ(empty.hex_digest(),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ResumableSha256 abc;
    abc.update("ab");
    ResumableSha256 resumed(abc.state());
    resumed.update("c");
    EXPECT_EQ(resumed.hex_digest(),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    // A big stream resumed at many points: past 2^32 bits the length spans two words.
    std::string chunk = random_bytes(1 << 20, 2);
    ResumableSha256 whole, hopping;
    for (int i = 0; i < 520; ++i) {
        whole.update(chunk);
        hopping.update(chunk.data(), chunk.size() - 7);
        hopping = ResumableSha256(*Sha256Midstate::parse(hopping.state().text(), hopping.bytes()));
        hopping.update(chunk.data() + chunk.size() - 7, 7);
    }
    EXPECT_EQ(hopping.bytes(), 520ull << 20);
    EXPECT_EQ(hopping.hex_digest(), whole.hex_digest());
}

TEST(Sha256Midstate, BadTextIsAnError) {
    ResumableSha256 h;
    h.update("hello");
    auto text = h.state().text();
    EXPECT_FALSE(Sha256Midstate::parse(text, 6)); // another byte count: another tail size
    EXPECT_FALSE(Sha256Midstate::parse(text.substr(1), 5));
    std::string bad = text;
    bad[3] = 'G';
    auto e = Sha256Midstate::parse(bad, 5);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error(), "a SHA-256 state has a character that is not hex");
    EXPECT_TRUE(Sha256Midstate::parse(text, 5));
}

} // namespace
} // namespace factory
