// Listings (cache/listings.hpp): the frame round-trips any body and refuses a truncated or
// edited file; `cache prune` removes the listings of removed or missing blobs and damaged ones
// (and keeps the others); `cache verify` reports and repairs bad ones.
#include "cache/gc.hpp"
#include "cache/listings.hpp"
#include "cache/verify.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace factory::cache {
namespace {

namespace fs = std::filesystem;

TEST(CacheListings, TheFrameRoundTripsAndRefusesDamage) {
    static constexpr char bytes[] = "tree-entries/1 ...\n\0\x01\xff binary\nend of nothing";
    const std::string body(bytes, sizeof bytes - 1);
    auto file = frame_listing(body);
    EXPECT_TRUE(file.starts_with("factory-listing 1\n"));
    EXPECT_EQ(unframe_listing(file).value(), body);
    EXPECT_EQ(unframe_listing(frame_listing("")).value(), "");
    for (std::size_t n = 0; n < file.size(); ++n)
        EXPECT_FALSE(unframe_listing(file.substr(0, n))) << "a prefix of " << n << " bytes";
    for (std::size_t at : {std::size_t{0}, std::size_t{20}, file.size() / 2, file.size() - 10}) {
        auto edited = file;
        edited[at] ^= 0x20;
        EXPECT_FALSE(unframe_listing(edited)) << "byte " << at << " edited";
    }
    auto edited = file;
    edited[25] ^= 1;
    EXPECT_EQ(unframe_listing(edited).error(), "checksum mismatch (edited or corrupt)");
    EXPECT_THROW(Listings(fs::path("/x")).path("../../etc"), Error);
}

struct Store {
    testing::TestDir dir;
    BlobStore blobs{make()};
    Listings listings{dir.path()};

    BlobStore make() {
        fs::create_directories(dir / "blobs/sha256");
        fs::create_directories(dir / "tmp");
        return BlobStore(dir / "blobs/sha256", dir / "tmp");
    }
    std::string listed_blob(const std::string& content) {
        auto hex = blobs.put(content);
        listings.put(hex, "entries of " + content);
        return hex;
    }
    void damage(const std::string& hex) {
        auto text = read_file(listings.path(hex)).value();
        text[text.size() - 70] ^= 1;
        write_file_atomic(listings.path(hex), text);
    }
};

TEST(CacheListings, PruneRemovesTheListingsOfRemovedAndMissingBlobs) {
    Store s;
    auto kept = s.listed_blob("a layer a ref needs");
    auto unreachable = s.listed_blob("a layer nothing needs");
    auto gone = Sha256::hex("a blob removed by hand");
    s.listings.put(gone, "entries");
    auto damaged = s.listed_blob("a layer whose listing is damaged");
    s.damage(damaged);

    PruneOptions dry;
    dry.dry_run = true;
    RootBlobs roots = [&] { return std::vector<std::string>{kept, damaged}; };
    auto preview = prune(s.dir.path(), s.blobs, dry, roots);
    EXPECT_EQ(preview.listings_removed, 3u);
    EXPECT_TRUE(fs::exists(s.listings.path(gone)));

    auto report = prune(s.dir.path(), s.blobs, {}, roots);
    EXPECT_EQ(report.listings_removed, 3u);
    EXPECT_EQ(report.listings_kept, 1u);
    std::vector<std::string> reasons;
    for (const auto& item : report.items)
        if (item.kind == "listing") reasons.push_back(item.name + " " + item.reason);
    std::sort(reasons.begin(), reasons.end());
    std::vector<std::string> expected = {
        gone + " its blob is gone", unreachable + " its blob is removed", damaged + " unreadable"};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(reasons, expected);
    EXPECT_EQ(s.listings.list(), std::vector<std::string>{kept});
    EXPECT_EQ(s.listings.read(kept).value(), "entries of a layer a ref needs");
    EXPECT_TRUE(s.blobs.has(damaged)) << "a bad listing costs its listing, not its blob";
}

TEST(CacheListings, VerifyReportsAndRepairsBadListings) {
    Store s;
    auto good = s.listed_blob("a sound layer");
    auto bad = s.listed_blob("a layer whose listing is damaged");
    s.damage(bad);
    auto orphan = Sha256::hex("no such blob");
    s.listings.put(orphan, "entries");

    auto report = verify(s.dir.path(), s.blobs, {}, {});
    EXPECT_FALSE(report.clean());
    EXPECT_EQ(report.listings_checked, 3u);
    auto bad_listings = report.bad_listings;
    std::sort(bad_listings.begin(), bad_listings.end());
    std::vector<std::string> expected = {bad, orphan};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(bad_listings, expected);
    bool named = false;
    for (const auto& p : report.problems)
        named |= p == "listing of blob sha256:" + orphan + " is of a missing blob";
    EXPECT_TRUE(named);

    VerifyOptions repair;
    repair.repair = true;
    auto repaired = verify(s.dir.path(), s.blobs, {}, repair);
    EXPECT_EQ(repaired.repairs.size(), 2u);
    EXPECT_TRUE(verify(s.dir.path(), s.blobs, {}, {}).clean());
    EXPECT_EQ(s.listings.list(), std::vector<std::string>{good});
}

} // namespace
} // namespace factory::cache
