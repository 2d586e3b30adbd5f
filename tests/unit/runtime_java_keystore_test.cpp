// Java's trust store (runtime/java_keystore.hpp): each entry's date set to the epoch, the
// integrity digest made again; anything else left as it is. The expected digests were computed
// with Python's hashlib from the JKS rules, which reproduce the digest of a real Debian bookworm
// /etc/ssl/certs/java/cacerts; and diff_upper hands the normalized store to the layer.
#include "factory/runtime/java_keystore.hpp"

#include <gtest/gtest.h>

#include "factory/runtime/changeset.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::runtime;

namespace {

std::string be(std::uint64_t v, int width) {
    std::string out;
    for (int i = width - 1; i >= 0; --i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
}

std::string from_hex(std::string_view hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    return out;
}

// A version 2 store of two trusted certificates ("debian:a.pem", "debian:b.pem") with these
// dates (ms), without its digest.
std::string store_body(std::uint64_t date_a, std::uint64_t date_b, std::uint32_t tag = 2) {
    std::string b = be(0xFEEDFEED, 4) + be(2, 4) + be(2, 4);
    for (auto [alias, date] : {std::pair{"debian:a.pem", date_a}, {"debian:b.pem", date_b}}) {
        std::string name = alias;
        b += be(tag, 4) + be(name.size(), 2) + name + be(date, 8);
        b += be(5, 2) + "X.509" + be(5, 4) + std::string("0\x03\x02\x01\x00", 5);
    }
    return b;
}

const std::string built =
    store_body(1796225268086, 1796225268099) + from_hex("74440877976a1041699bc50c83248bb2d802983f");
const std::string at_epoch =
    store_body(1700000000000, 1700000000000) + from_hex("67bef126d538de86641e2cd9b4b44d1621210fdf");

} // namespace

TEST(JavaKeystore, DatesBecomeTheEpochAndTheDigestIsMadeAgain) {
    auto out = java_keystore_at_epoch(built, 1700000000);
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, at_epoch);
    EXPECT_EQ(out->size(), built.size());
    // Already at the epoch: the same bytes again.
    EXPECT_EQ(java_keystore_at_epoch(at_epoch, 1700000000).value_or(""), at_epoch);
}

TEST(JavaKeystore, AnythingElseIsLeftAlone) {
    // Another password's digest, a flipped byte, trailing or missing bytes, a private key
    // entry, another magic, a store shorter than a digest, a negative epoch.
    std::string other_password = store_body(1796225268086, 1796225268099) +
                                 from_hex("c595185aa1d4489e1fe695dd38c5fc3ff271e2b7");
    std::string flipped = built;
    flipped[40] ^= 1;
    std::string key_entry = store_body(1, 2, 1) + std::string(20, '\0');
    std::string magic = built;
    magic[0] = '\xfe', magic[1] = '\xfe';
    for (const auto& bytes :
         {other_password, flipped, built + "x", built.substr(0, built.size() - 1), built.substr(1),
          key_entry, magic, std::string(19, '\0'), std::string()})
        EXPECT_FALSE(java_keystore_at_epoch(bytes, 1700000000)) << bytes.size() << " bytes";
    EXPECT_FALSE(java_keystore_at_epoch(built, -1));
}

TEST(JavaKeystore, DiffUpperGivesTheLayerTheStoreAtTheEpoch) {
    factory::testing::TestDir tmp;
    auto upper = tmp / "upper";
    factory::testing::write(upper / java_cacerts_path, built);
    factory::testing::write(upper / "etc/ssl/certs/other/cacerts", built); // another path
    NormalizeOptions options;
    options.epoch = 1700000000;
    auto entries = diff_upper(upper, options);
    ASSERT_TRUE(entries) << entries.error();
    int seen = 0;
    for (const auto& e : *entries) {
        if (e.path == java_cacerts_path) {
            ++seen;
            EXPECT_EQ(e.data, at_epoch);
            EXPECT_EQ(e.source, "");
        }
        if (e.path == "etc/ssl/certs/other/cacerts") {
            ++seen;
            EXPECT_EQ(e.source, (upper / "etc/ssl/certs/other/cacerts").string());
        }
    }
    EXPECT_EQ(seen, 2);
    // Without an epoch (a snapshot of a tree, not a step's work): streamed as it is.
    options.epoch.reset();
    entries = diff_upper(upper, options);
    ASSERT_TRUE(entries) << entries.error();
    for (const auto& e : *entries) {
        if (e.path == java_cacerts_path) {
            EXPECT_EQ(e.source, (upper / java_cacerts_path).string());
        }
    }
}
