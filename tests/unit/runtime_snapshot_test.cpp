// Snapshots: a layer blob unpacked once into ROOT/snapshots/<diff_id hex>/ in overlay form,
// verified against its diff_id, shared by concurrent users; and an overlay of snapshots shows
// the same tree as the layers applied one over the other in a plain directory.
#include "factory/runtime/snapshot_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "cache/lock.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/runtime/overlay.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

// Option literals name only the fields a test sets.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::runtime;

namespace {

layer::Entry dir(std::string path, unsigned mode = 0755) {
    layer::Entry e;
    e.path = std::move(path);
    e.type = layer::Entry::Type::dir;
    e.mode = mode;
    return e;
}
layer::Entry file(std::string path, std::string data, unsigned mode = 0644, std::uint32_t uid = 0) {
    layer::Entry e;
    e.path = std::move(path);
    e.data = std::move(data);
    e.mode = mode;
    e.uid = e.gid = uid;
    return e;
}
layer::Entry symlink(std::string path, std::string target) {
    layer::Entry e;
    e.path = std::move(path);
    e.type = layer::Entry::Type::symlink;
    e.link = std::move(target);
    e.mode = 0777;
    return e;
}

struct Store {
    explicit Store(const fs::path& root)
        : root(root), blobs(root / "blobs" / "sha256", root / "tmp") {
        fs::create_directories(root / "blobs" / "sha256");
        fs::create_directories(root / "tmp");
    }
    // Writes a layer into the store; returns its info.
    layer::LayerInfo add(std::vector<layer::Entry> entries,
                         layer::Compression c = layer::Compression::gzip) {
        auto temp = root / "tmp" / "layer";
        Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        layer::LayerOptions o;
        o.compression = c;
        auto info = layer::write_layer(std::move(entries), o, fd.get());
        EXPECT_TRUE(info) << info.error();
        fd.reset();
        auto hex = info->digest.substr(7);
        EXPECT_TRUE(blobs.add_file(temp, hex, info->size, cache::Transfer::copy));
        fs::remove(temp);
        return *info;
    }
    LayerBlob blob(const layer::LayerInfo& info) const {
        return {info.digest.substr(7), info.media_type};
    }
    fs::path root;
    cache::BlobStore blobs;
};

std::vector<layer::Entry> many_files(int n) {
    std::vector<layer::Entry> out = {dir("many")};
    for (int i = 0; i < n; ++i)
        out.push_back(file("many/f" + std::to_string(i), std::string(100, 'x')));
    return out;
}

std::vector<std::string> temps(const fs::path& snapshots) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(snapshots, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().starts_with(".tmp-"))
            out.push_back(it->path().filename());
    return out;
}

std::string xattr(const fs::path& p, const char* name) {
    char buf[64];
    ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
    return n < 0 ? "<none>" : std::string(buf, static_cast<std::size_t>(n));
}

class SnapshotTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!factory::testing::privileged())
            GTEST_SKIP() << "overlay snapshots need root (mknod, trusted.*)";
    }
    factory::testing::TestDir tmp;
};

TEST_F(SnapshotTest, UnpacksOnceInOverlayFormAndReuses) {
    Store store(tmp / "store");
    auto info = store.add({dir("etc"), file("etc/os-release", "ID=test\n"), file(".wh.gone", ""),
                           dir("d"), file("d/.wh..wh..opq", ""), file("d/new", "n", 0600, 1000)});
    SnapshotOptions o;
    o.sync = false;
    SnapshotStore snaps(store.root, store.blobs, o);
    EXPECT_FALSE(snaps.has(info.diff_id));
    auto path = snaps.ensure(info.diff_id, store.blob(info));
    ASSERT_TRUE(path) << path.error();
    EXPECT_EQ(*path, store.root / "snapshots" / info.diff_id.substr(7));
    EXPECT_TRUE(snaps.has(info.diff_id));
    EXPECT_EQ(snaps.last_stats().diff_id, info.diff_id);
    std::ifstream in(*path / "etc/os-release");
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "ID=test");
    struct stat st {};
    ASSERT_EQ(::lstat((*path / "gone").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) << "whiteout → 0/0 device";
    EXPECT_EQ(xattr(*path / "d", "trusted.overlay.opaque"), "y");
    ASSERT_EQ(::lstat((*path / "d/new").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000u);
    ASSERT_EQ(::stat((store.root / "snapshots").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u) << "setuid files unreachable by other users";
    ASSERT_EQ(::stat(path->c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0755u);

    SnapshotStore again(store.root, store.blobs, o);
    auto path2 = again.ensure(info.diff_id, store.blob(info));
    ASSERT_TRUE(path2) << path2.error();
    EXPECT_EQ(*path2, *path);
    EXPECT_TRUE(again.last_stats().diff_id.empty()) << "the second ensure unpacked again";
    EXPECT_TRUE(temps(store.root / "snapshots").empty());
}

TEST_F(SnapshotTest, ZstdAndUncompressedLayers) {
    Store store(tmp / "store");
    SnapshotStore snaps(store.root, store.blobs, {.sync = false});
    for (auto c : {layer::Compression::zstd, layer::Compression::none}) {
        auto info = store.add({file(c == layer::Compression::zstd ? "z" : "u", "content")}, c);
        auto path = snaps.ensure(info.diff_id, store.blob(info));
        ASSERT_TRUE(path) << path.error();
    }
}

TEST_F(SnapshotTest, AWrongDiffIdLeavesNothingBehind) {
    Store store(tmp / "store");
    auto info = store.add({file("a", "a")});
    SnapshotStore snaps(store.root, store.blobs, {.sync = false});
    std::string wrong = "sha256:" + std::string(64, 'e');
    auto path = snaps.ensure(wrong, store.blob(info));
    ASSERT_FALSE(path);
    EXPECT_NE(path.error().find("hashes to " + info.diff_id + ", but its diff_id is " + wrong),
              std::string::npos)
        << path.error();
    EXPECT_FALSE(snaps.has(wrong));
    EXPECT_TRUE(temps(store.root / "snapshots").empty());

    auto missing = snaps.ensure(
        info.diff_id,
        LayerBlob{std::string(64, 'a'), std::string(layer::media_type(layer::Compression::gzip))});
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find("is not in the store"), std::string::npos) << missing.error();
    EXPECT_FALSE(snaps.ensure("sha256:nothex", store.blob(info)));
    EXPECT_FALSE(
        snaps.ensure(info.diff_id, LayerBlob{store.blob(info).digest_hex, "application/json"}));
}

TEST_F(SnapshotTest, StaleTempsOfADeadUnpackAreSwept) {
    Store store(tmp / "store");
    auto info = store.add({file("a", "a")});
    auto stale = store.root / "snapshots" / (".tmp-" + info.diff_id.substr(7) + "-999999-0-dead");
    fs::create_directories(stale / "half" / "done");
    ::chmod((stale / "half").c_str(), 0500);
    SnapshotStore snaps(store.root, store.blobs, {.sync = false});
    ASSERT_TRUE(snaps.ensure(info.diff_id, store.blob(info)));
    EXPECT_FALSE(fs::exists(stale));
}

TEST_F(SnapshotTest, ConcurrentThreadsUnpackOnce) {
    Store store(tmp / "store");
    auto info = store.add(many_files(500));
    std::vector<std::unique_ptr<SnapshotStore>> stores;
    for (int i = 0; i < 4; ++i)
        stores.push_back(std::make_unique<SnapshotStore>(store.root, store.blobs,
                                                         SnapshotOptions{.sync = false}));
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (auto& s : stores)
        threads.emplace_back([&, s = s.get()] {
            if (s->ensure(info.diff_id, store.blob(info))) ++ok;
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(ok, 4);
    int unpacks = 0;
    for (auto& s : stores)
        unpacks += !s->last_stats().diff_id.empty();
    EXPECT_EQ(unpacks, 1);
}

TEST_F(SnapshotTest, ConcurrentProcessesUnpackOnce) {
    Store store(tmp / "store");
    auto info = store.add(many_files(500));
    auto blob = store.blob(info);
    pid_t child = ::fork();
    if (child == 0) {
        SnapshotStore s(store.root, store.blobs, {.sync = false});
        auto r = s.ensure(info.diff_id, blob);
        ::_exit(!r ? 2 : s.last_stats().diff_id.empty() ? 0 : 1);
    }
    SnapshotStore s(store.root, store.blobs, {.sync = false});
    auto r = s.ensure(info.diff_id, blob);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(r) << r.error();
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 2) << "the child's ensure failed";
    EXPECT_EQ(WEXITSTATUS(status) + (s.last_stats().diff_id.empty() ? 0 : 1), 1)
        << "exactly one process unpacked";
    EXPECT_EQ(std::distance(fs::directory_iterator(*r / "many"), fs::directory_iterator()), 500);
}

TEST_F(SnapshotTest, AWaiterReusesWhatTheLockHolderPublished) {
    Store store(tmp / "store");
    auto info = store.add({file("a", "a")});
    auto hex = info.diff_id.substr(7);
    // Play the other process: hold the layer's lock.
    auto lock = cache::FileLock::exclusive(store.root / "locks" / "snapshots" / (hex + ".lock"));
    std::atomic<bool> waited{false};
    SnapshotStore snaps(store.root, store.blobs,
                        {.sync = false, .on_wait = [&](const std::string&) { waited = true; }});
    Result<fs::path> result = Unexpected("not run");
    std::thread t([&] { result = snaps.ensure(info.diff_id, store.blob(info)); });
    for (int i = 0; i < 200 && !waited; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_TRUE(waited);
    // "Publish" it as the holder would, then release.
    SnapshotStore holder(store.root, store.blobs, {.sync = false});
    fs::create_directories(store.root / "snapshots" / hex);
    lock.unlock();
    t.join();
    ASSERT_TRUE(result) << result.error();
    EXPECT_TRUE(snaps.last_stats().diff_id.empty()) << "the waiter unpacked instead of reusing";
}

// ---- overlay of snapshots == layers applied in order ---------------------------------------

std::map<std::string, std::string> tree(const fs::path& root) {
    std::map<std::string, std::string> out;
    for (fs::recursive_directory_iterator it(root), end; it != end; ++it) {
        struct stat st {};
        ::lstat(it->path().c_str(), &st);
        std::ostringstream s;
        s << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
        if (S_ISREG(st.st_mode))
            s << " " << st.st_size << " " << st.st_mtim.tv_sec << " "
              << sha256_file(it->path().string()).value_or("?");
        if (S_ISLNK(st.st_mode)) s << " -> " << fs::read_symlink(it->path()).string();
        out[fs::relative(it->path(), root).string()] = s.str();
    }
    return out;
}

TEST_F(SnapshotTest, OverlayOfSnapshotsEqualsTheLayersAppliedInOrder) {
    Store store(tmp / "store");
    std::vector<layer::LayerInfo> layers = {
        store.add({dir("a"), file("a/x", "ax"), file("a/y", "ay"), dir("b"), file("b/z", "bz"),
                   dir("b/sub"), file("b/sub/deep", "deep"), file("c", "c"), dir("usr"),
                   dir("usr/lib"), symlink("lib", "usr/lib"), dir("w"), file("w/old", "old"),
                   file("keep", "keep", 0600, 1000)}),
        store.add({file(".wh.c", ""), dir("a"), file("a/.wh.x", ""), dir("b", 0700),
                   file("b/.wh..wh..opq", ""), file("b/new", "new"), dir("w"), file("w/new", "n"),
                   file(".wh.w", ""), file("c2", "c2"), dir("e"), file("e/.wh..wh..opq", "")}),
        store.add({file(".wh.a", ""), dir("a"), file("a/again", "again"), file(".wh.lib", ""),
                   symlink("lib", "usr/lib64"), dir("usr/lib64"), file("usr/lib64/l", "l")}),
    };
    // Layers applied one over the other in a plain directory.
    fs::create_directories(tmp / "flat");
    Fd flat(::open((tmp / "flat").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (const auto& l : layers) {
        auto r = apply_layer(store.blobs.path(l.digest.substr(7)), flat.get(), {});
        ASSERT_TRUE(r) << r.error();
    }
    // Snapshots, top first, as one read-only overlay.
    SnapshotStore snaps(store.root, store.blobs, {.sync = false});
    std::vector<fs::path> lowers;
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        auto p = snaps.ensure(it->diff_id, store.blob(*it));
        ASSERT_TRUE(p) << p.error();
        lowers.push_back(*p);
    }
    for (const char* d : {"upper", "work", "merged"})
        fs::create_directories(tmp / d);
    auto m = OverlayMount::mount(lowers, tmp / "upper", tmp / "work", tmp / "merged");
    ASSERT_TRUE(m) << m.error();
    EXPECT_NE(m->options().find("redirect_dir=off"), std::string::npos) << m->options();
    auto merged = tree(tmp / "merged"), applied = tree(tmp / "flat");
    merged.erase(".");
    applied.erase(".");
    EXPECT_EQ(merged, applied);
    EXPECT_TRUE(merged.contains("a/again"));
    EXPECT_FALSE(merged.contains("a/y"));
    EXPECT_FALSE(merged.contains("b/z"));
    EXPECT_TRUE(merged.contains("w/new"));
    EXPECT_FALSE(merged.contains("w/old"));
    ASSERT_TRUE(m->unmount());
    EXPECT_FALSE(m->mounted());
}

TEST_F(SnapshotTest, ManyLayersFitTheMountOptions) {
    // 120 snapshot paths under a long store path: over one page as absolute paths.
    Store store(tmp / std::string(100, 's'));
    SnapshotStore snaps(store.root, store.blobs, {.sync = false});
    std::vector<fs::path> lowers;
    for (int i = 0; i < 120; ++i) {
        auto info = store.add({file("f" + std::to_string(i), std::to_string(i))});
        auto p = snaps.ensure(info.diff_id, store.blob(info));
        ASSERT_TRUE(p) << p.error();
        lowers.insert(lowers.begin(), *p);
    }
    for (const char* d : {"upper", "work", "merged"})
        fs::create_directories(tmp / d);
    auto m = OverlayMount::mount(lowers, tmp / "upper", tmp / "work", tmp / "merged");
    ASSERT_TRUE(m) << m.error();
    EXPECT_NE(m->options().find("/proc/self/fd/"), std::string::npos);
    EXPECT_TRUE(fs::exists(tmp / "merged" / "f0"));
    EXPECT_TRUE(fs::exists(tmp / "merged" / "f119"));
}

TEST_F(SnapshotTest, ScratchOverlayHasAnEmptyLower) {
    for (const char* d : {"upper", "work", "merged"})
        fs::create_directories(tmp / d);
    auto m = OverlayMount::mount({}, tmp / "upper", tmp / "work", tmp / "merged");
    ASSERT_TRUE(m) << m.error();
    std::ofstream(tmp / "merged" / "new") << "x";
    EXPECT_TRUE(fs::exists(tmp / "upper" / "new"));
    EXPECT_TRUE(fs::is_empty(tmp / ".empty-lower"));
}

} // namespace
