// Two layer blobs compared entry by entry (export/layer_diff.hpp), as `factory build --check`
// reports a step that did not reproduce: which paths differ and in what, mtimes included.
#include "factory/export/layer_diff.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/util/fd.hpp"
#include "tests/unit/test_dir.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

namespace factory::exporter {
namespace {

namespace fs = std::filesystem;

layer::Entry file(std::string path, std::string data, unsigned mode = 0644) {
    layer::Entry e;
    e.path = std::move(path);
    e.data = std::move(data);
    e.size = e.data.size();
    e.mode = mode;
    return e;
}

layer::Entry dir(std::string path) {
    layer::Entry e;
    e.path = std::move(path);
    e.type = layer::Entry::Type::dir;
    e.mode = 0755;
    return e;
}

// Writes the entries as a gzip layer at `path`; returns its descriptor.
oci::Descriptor write(const fs::path& path, std::vector<layer::Entry> entries,
                      std::int64_t epoch = 0) {
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    EXPECT_TRUE(fd);
    layer::LayerOptions o;
    o.epoch = epoch;
    auto info = layer::write_layer(std::move(entries), o, fd.get());
    EXPECT_TRUE(info) << (info ? "" : info.error());
    oci::Descriptor d;
    d.media_type = info->media_type;
    d.digest = info->digest;
    d.size = static_cast<std::int64_t>(info->size);
    return d;
}

std::vector<FileChange> diff(const testing::TestDir& t, std::vector<layer::Entry> a,
                             std::vector<layer::Entry> b, std::int64_t epoch_a = 0,
                             std::int64_t epoch_b = 0) {
    auto da = write(t / "a.tar.gz", std::move(a), epoch_a);
    auto db = write(t / "b.tar.gz", std::move(b), epoch_b);
    return diff_layer_entries(read_layer_entries(t / "a.tar.gz", da),
                              read_layer_entries(t / "b.tar.gz", db));
}

TEST(LayerDiff, SameEntriesGiveNoChange) {
    testing::TestDir t;
    auto changes = diff(t, {dir("etc"), file("etc/a", "1")}, {dir("etc"), file("etc/a", "1")});
    EXPECT_TRUE(changes.empty());
}

TEST(LayerDiff, NamesTheFileAndWhatDiffers) {
    testing::TestDir t;
    auto changes = diff(t, {file("stamp", "123\n"), file("tool", "x", 0644), file("gone", "")},
                        {file("stamp", "456789\n"), file("tool", "x", 0755), file("new", "")});
    ASSERT_EQ(changes.size(), 4u);
    EXPECT_EQ(changes[0].path, "gone");
    EXPECT_EQ(changes[0].kind, ChangeKind::removed);
    EXPECT_EQ(changes[1].path, "new");
    EXPECT_EQ(changes[1].kind, ChangeKind::added);
    EXPECT_EQ(changes[2].path, "stamp");
    EXPECT_EQ(changes[2].what, std::vector<std::string>{"content"});
    EXPECT_EQ(changes[2].b->size, 7u);
    EXPECT_EQ(changes[3].path, "tool");
    EXPECT_EQ(changes[3].what, std::vector<std::string>{"mode"});
}

TEST(LayerDiff, MtimesCount) {
    testing::TestDir t;
    auto changes = diff(t, {file("x", "same")}, {file("x", "same")}, 0, 1700000000);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].path, "x");
    EXPECT_EQ(changes[0].what, std::vector<std::string>{"mtime"});
    EXPECT_EQ(changes[0].a->mtime, 0);
    EXPECT_EQ(changes[0].b->mtime, 1700000000);
}

TEST(LayerDiff, OwnersAndXattrs) {
    testing::TestDir t;
    auto a = file("f", "1");
    auto b = file("f", "1");
    b.uid = 1000;
    b.xattrs = {{"user.note", "v"}};
    auto changes = diff(t, {a}, {b});
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].what, (std::vector<std::string>{"owner", "xattrs"}));
}

TEST(LayerDiff, WhiteoutsAreEntries) {
    testing::TestDir t;
    auto changes = diff(t, {file(".wh.old", "")}, {});
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].path, ".wh.old");
    EXPECT_EQ(changes[0].kind, ChangeKind::removed);
}

TEST(LayerDiff, ABlobThatIsNotItsDigestIsRefused) {
    testing::TestDir t;
    auto d = write(t / "a.tar.gz", {file("x", "1")});
    d.digest = "sha256:" + std::string(64, '0');
    EXPECT_THROW(read_layer_entries(t / "a.tar.gz", d), Error);
}

} // namespace
} // namespace factory::exporter
