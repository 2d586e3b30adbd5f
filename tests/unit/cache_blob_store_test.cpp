#include "cache/blob_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>
#include <vector>

#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

using factory::testing::slurp;

using factory::cache::BlobStore;
using factory::cache::is_sha256_hex;
using factory::cache::Transfer;
namespace fs = std::filesystem;

namespace {

// sha256("hello") and sha256("")
constexpr const char* hello_hex =
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
constexpr const char* empty_hex =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Store {
    factory::testing::TestDir dir;
    BlobStore blobs{make()};
    BlobStore make() {
        fs::create_directories(dir / "blobs/sha256");
        fs::create_directories(dir / "tmp");
        return BlobStore(dir / "blobs/sha256", dir / "tmp");
    }
};

void overwrite(const fs::path& p, const std::string& data) {
    ::chmod(p.c_str(), 0644);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

} // namespace

TEST(BlobStore, HexValidationIsStrict) {
    EXPECT_TRUE(is_sha256_hex(hello_hex));
    EXPECT_FALSE(is_sha256_hex(""));
    EXPECT_FALSE(is_sha256_hex(std::string(hello_hex).substr(1)));
    EXPECT_FALSE(is_sha256_hex(std::string(hello_hex) + "0"));
    std::string upper = hello_hex;
    upper[0] = 'C';
    EXPECT_FALSE(is_sha256_hex(upper));
    EXPECT_FALSE(is_sha256_hex("../../../../etc/passwd" + std::string(42, 'a')));
}

TEST(BlobStore, PathRejectsInvalidHexBeforeUse) {
    Store s;
    EXPECT_THROW(s.blobs.path("../x"), factory::Error);
    EXPECT_FALSE(s.blobs.has("../x"));
    auto r = s.blobs.read("../../etc/passwd", 100);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("invalid sha256 blob name"), std::string::npos) << r.error();
}

TEST(BlobStore, PutStoresContentUnderItsDigestWithMode0644) {
    Store s;
    ::umask(077);
    auto hex = s.blobs.put("hello");
    ::umask(022);
    EXPECT_EQ(hex, hello_hex);
    EXPECT_TRUE(s.blobs.has(hex));
    EXPECT_EQ(slurp(s.blobs.path(hex)), "hello");
    struct stat st {};
    ASSERT_EQ(::stat(s.blobs.path(hex).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    EXPECT_EQ(s.blobs.put("hello"), hello_hex); // idempotent
    EXPECT_EQ(s.blobs.put(""), empty_hex);
    // No temp files left behind.
    for (auto& e : fs::directory_iterator(s.dir / "blobs/sha256"))
        EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
}

TEST(BlobStore, ReadVerifiesDigestAndSize) {
    Store s;
    auto hex = s.blobs.put("hello");
    auto ok = s.blobs.read(hex, 100);
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_EQ(*ok, "hello");

    auto too_big = s.blobs.read(hex, 4);
    ASSERT_FALSE(too_big);
    EXPECT_NE(too_big.error().find("over the limit of 4"), std::string::npos) << too_big.error();

    auto wrong_size = s.blobs.read_exact(hex, 6);
    ASSERT_FALSE(wrong_size);
    EXPECT_NE(wrong_size.error().find("size is 5 bytes, its descriptor says 6"), std::string::npos)
        << wrong_size.error();

    overwrite(s.blobs.path(hex), "jello");
    auto corrupt = s.blobs.read(hex, 100);
    ASSERT_FALSE(corrupt);
    EXPECT_EQ(corrupt.error(), s.blobs.path(hex).string() +
                                   ": content does not match its digest (got sha256:" +
                                   factory::Sha256::hex("jello") + ")");
}

TEST(BlobStore, VerifyReportsCorruption) {
    Store s;
    auto hex = s.blobs.put("hello");
    EXPECT_TRUE(s.blobs.verify(hex));
    overwrite(s.blobs.path(hex), "hellO");
    auto r = s.blobs.verify(hex);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(),
              std::string("blob sha256:") + hello_hex +
                  " is corrupt: content hashes to sha256:" + factory::Sha256::hex("hellO"));
}

TEST(BlobStore, ReadRefusesASymlinkedBlob) {
    Store s;
    std::ofstream(s.dir / "outside") << "hello";
    fs::create_symlink(s.dir / "outside", s.blobs.path(hello_hex));
    EXPECT_FALSE(s.blobs.has(hello_hex));
    auto r = s.blobs.read(hello_hex, 100);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("cannot open"), std::string::npos) << r.error();
}

TEST(BlobStore, WriterStreamsHashesAndCommits) {
    Store s;
    auto w = s.blobs.writer();
    auto temp = w.temp_path();
    EXPECT_EQ(temp.parent_path(), s.dir / "tmp");
    w.write("hel");
    w.write("lo");
    EXPECT_EQ(w.size(), 5u);
    EXPECT_EQ(w.commit(), hello_hex);
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_EQ(slurp(s.blobs.path(hello_hex)), "hello");

    // The same content again: the temp is dropped, the blob kept.
    auto w2 = s.blobs.writer();
    w2.write("hello");
    auto temp2 = w2.temp_path();
    EXPECT_EQ(w2.commit(), hello_hex);
    EXPECT_FALSE(fs::exists(temp2));
}

TEST(BlobStore, WriterThroughRawFdIsRehashed) {
    Store s;
    auto w = s.blobs.writer();
    ASSERT_EQ(::write(w.fd(), "hello", 5), 5);
    EXPECT_EQ(w.commit(), hello_hex);
    EXPECT_EQ(w.size(), 5u);
}

TEST(BlobStore, AbandonedWriterLeavesNothing) {
    Store s;
    fs::path temp;
    {
        auto w = s.blobs.writer();
        w.write("partial");
        temp = w.temp_path();
        EXPECT_TRUE(fs::exists(temp));
    }
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_TRUE(fs::is_empty(s.dir / "blobs/sha256"));
}

TEST(BlobStore, CommitVerifiedPublishesOnlyMatchingContent) {
    Store s;
    auto w = s.blobs.writer();
    w.write("hellO");
    auto temp = w.temp_path();
    auto r = w.commit_verified(hello_hex, 5);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::string("blob sha256:") + hello_hex +
                             " does not match its content: content hashes to sha256:" +
                             factory::Sha256::hex("hellO"));
    EXPECT_FALSE(s.blobs.has(hello_hex));

    auto w2 = s.blobs.writer();
    w2.write("hello");
    auto size_lie = w2.commit_verified(hello_hex, 6);
    ASSERT_FALSE(size_lie);
    EXPECT_NE(size_lie.error().find("has 5 bytes, expected 6"), std::string::npos);

    auto w3 = s.blobs.writer();
    w3.write("hello");
    auto ok = w3.commit_verified(hello_hex, 5);
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_TRUE(s.blobs.has(hello_hex));
}

TEST(BlobStore, CommitTempAdoptsAFile) {
    Store s;
    auto temp = s.dir / "tmp" / "staged";
    std::ofstream(temp) << "hello";
    s.blobs.commit_temp(temp, hello_hex);
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_EQ(slurp(s.blobs.path(hello_hex)), "hello");
    EXPECT_THROW(s.blobs.commit_temp(temp, "nothex"), factory::Error);
}

TEST(BlobStore, AddFileLinksOrCopies) {
    Store s;
    auto src = s.dir / "src";
    std::ofstream(src) << "hello";
    auto r = s.blobs.add_file(src, hello_hex, 5);
    ASSERT_TRUE(r) << r.error();
    struct stat a {
    }, b{};
    ::stat(src.c_str(), &a);
    ::stat(s.blobs.path(hello_hex).c_str(), &b);
    EXPECT_EQ(a.st_ino, b.st_ino) << "same file system: hard link";

    auto src2 = s.dir / "src2";
    std::ofstream(src2) << "world";
    auto hex2 = factory::Sha256::hex("world");
    ASSERT_TRUE(s.blobs.add_file(src2, hex2, 5, Transfer::copy));
    ::stat(src2.c_str(), &a);
    ::stat(s.blobs.path(hex2).c_str(), &b);
    EXPECT_NE(a.st_ino, b.st_ino);

    // A copy is verified.
    auto liar = s.dir / "liar";
    std::ofstream(liar) << "hellO";
    fs::remove(s.blobs.path(hello_hex));
    auto bad = s.blobs.add_file(liar, hello_hex, 5, Transfer::copy);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("does not match its content"), std::string::npos) << bad.error();
    EXPECT_FALSE(s.blobs.has(hello_hex));
    auto wrong_size = s.blobs.add_file(liar, hello_hex, 7);
    ASSERT_FALSE(wrong_size);
    EXPECT_NE(wrong_size.error().find("its descriptor says 7"), std::string::npos);
}

TEST(BlobStore, ConcurrentWritersOfTheSameBlob) {
    Store s;
    std::string big(1 << 20, 'x');
    std::vector<std::thread> threads;
    std::vector<std::string> results(8);
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            auto w = s.blobs.writer();
            w.write(big);
            results[i] = w.commit();
        });
    for (auto& t : threads)
        t.join();
    for (const auto& r : results)
        EXPECT_EQ(r, factory::Sha256::hex(big));
    EXPECT_TRUE(s.blobs.verify(results[0]));
    EXPECT_TRUE(fs::is_empty(s.dir / "tmp"));
}
