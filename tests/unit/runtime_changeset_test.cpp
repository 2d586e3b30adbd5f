// diff_upper: an overlay upper directory (made by hand here, as overlayfs would leave it) →
// layer entries; the normalization list; and the round trip upper → layer → overlay snapshot.
#include "factory/runtime/changeset.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "factory/layer/layer_writer.hpp"
#include "factory/runtime/applier.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

using factory::testing::write;

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::runtime;

namespace {

std::map<std::string, layer::Entry> by_path(const std::vector<layer::Entry>& entries) {
    std::map<std::string, layer::Entry> out;
    for (const auto& e : entries)
        out[e.path] = e;
    return out;
}

std::string xattr_of(const layer::Entry& e, const std::string& name) {
    for (const auto& [n, v] : e.xattrs)
        if (n == name) return v;
    return "<none>";
}

class ChangesetTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!factory::testing::privileged())
            GTEST_SKIP() << "needs root (whiteout devices, trusted.* xattrs)";
        upper = tmp / "upper";
        fs::create_directories(upper);
    }
    void whiteout(const std::string& rel) {
        fs::create_directories((upper / rel).parent_path());
        ASSERT_EQ(::mknod((upper / rel).c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
    }
    void opaque(const std::string& rel) {
        fs::create_directories(upper / rel);
        ASSERT_EQ(::setxattr((upper / rel).c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    }
    factory::testing::TestDir tmp;
    fs::path upper;
};

TEST_F(ChangesetTest, OverlayFormBecomesOciForm) {
    write(upper / "etc/app.conf", "conf\n", 0640);
    ::chown((upper / "etc/app.conf").c_str(), 1000, 1001);
    write(upper / "usr/bin/ping", "ELF", 0755);
    const char cap[] =
        "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    ASSERT_EQ(
        ::setxattr((upper / "usr/bin/ping").c_str(), "security.capability", cap, sizeof cap - 1, 0),
        0);
    ASSERT_EQ(::setxattr((upper / "usr/bin/ping").c_str(), "trusted.overlay.origin", "x", 1, 0), 0);
    ASSERT_EQ(::setxattr((upper / "usr/bin/ping").c_str(), "user.note", "kept", 4, 0), 0);
    whiteout("usr/bin/removed");
    opaque("var/lib/app");
    write(upper / "var/lib/app/state", "s");
    fs::create_symlink("../lib/x", upper / "usr/bin/x");
    write(upper / "opt/a", "same inode");
    fs::create_hard_link(upper / "opt/a", upper / "opt/b");
    fs::create_hard_link(upper / "opt/a", upper / "opt/0-first");
    ASSERT_EQ(::mkfifo((upper / "opt/fifo").c_str(), 0644), 0);

    std::vector<std::string> skipped;
    NormalizeOptions o;
    o.on_skip = [&](const std::string& p, const std::string& why) {
        skipped.push_back(p + ": " + why);
    };
    auto entries = diff_upper(upper, o);
    ASSERT_TRUE(entries) << entries.error();
    auto m = by_path(*entries);

    EXPECT_EQ(m["etc/app.conf"].mode, 0640u);
    EXPECT_EQ(m["etc/app.conf"].uid, 1000u);
    EXPECT_EQ(m["etc/app.conf"].gid, 1001u);
    EXPECT_EQ(m["etc/app.conf"].source, (upper / "etc/app.conf").string());
    EXPECT_EQ(m["etc/app.conf"].size, 5u);
    EXPECT_EQ(xattr_of(m["usr/bin/ping"], "security.capability"), std::string(cap, sizeof cap - 1));
    EXPECT_EQ(xattr_of(m["usr/bin/ping"], "user.note"), "kept");
    EXPECT_EQ(xattr_of(m["usr/bin/ping"], "trusted.overlay.origin"), "<none>");

    ASSERT_TRUE(m.contains("usr/bin/.wh.removed"));
    const auto& wh = m["usr/bin/.wh.removed"];
    EXPECT_EQ(wh.type, layer::Entry::Type::file);
    EXPECT_EQ(wh.mode, 0644u);
    EXPECT_EQ(wh.uid, 0u);
    EXPECT_TRUE(wh.source.empty() && wh.data.empty());
    EXPECT_FALSE(m.contains("usr/bin/removed"));

    ASSERT_TRUE(m.contains("var/lib/app/.wh..wh..opq"));
    EXPECT_EQ(xattr_of(m["var/lib/app"], "trusted.overlay.opaque"), "<none>");
    EXPECT_EQ(m["usr/bin/x"].type, layer::Entry::Type::symlink);
    EXPECT_EQ(m["usr/bin/x"].link, "../lib/x");

    EXPECT_EQ(m["opt/0-first"].type, layer::Entry::Type::file) << "first in canonical order";
    EXPECT_EQ(m["opt/a"].type, layer::Entry::Type::hardlink);
    EXPECT_EQ(m["opt/a"].link, "opt/0-first");
    EXPECT_EQ(m["opt/b"].link, "opt/0-first");
    EXPECT_EQ(skipped, std::vector<std::string>{"opt/fifo: fifo"});

    // The entries are a valid layer: sorted, checked, and the writer takes them.
    for (std::size_t i = 1; i < entries->size(); ++i)
        EXPECT_TRUE(layer::path_less((*entries)[i - 1].path, (*entries)[i].path));
    Fd out(::open((tmp / "layer.tar").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    layer::LayerOptions lo;
    lo.compression = layer::Compression::none;
    auto info = layer::write_layer(*entries, lo, out.get());
    ASSERT_TRUE(info) << info.error();

    // Round trip: the layer applied as an overlay snapshot gives back the upper directory's form.
    fs::create_directories(tmp / "snap");
    Fd snap(::open((tmp / "snap").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ApplyOptions ao;
    ao.mode = ApplyMode::overlay;
    auto applied = apply_layer(tmp / "layer.tar", snap.get(), ao);
    ASSERT_TRUE(applied) << applied.error();
    EXPECT_EQ(applied->diff_id, info->diff_id);
    struct stat st {};
    ASSERT_EQ(::lstat((tmp / "snap/usr/bin/removed").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
    char v[4] = {};
    EXPECT_EQ(::getxattr((tmp / "snap/var/lib/app").c_str(), "trusted.overlay.opaque", v, sizeof v),
              1);
    ASSERT_EQ(::lstat((tmp / "snap/opt/b").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 3u);
    auto again = diff_upper(tmp / "snap", {});
    ASSERT_TRUE(again) << again.error();
    ASSERT_EQ(again->size(), entries->size());
    for (std::size_t i = 0; i < entries->size(); ++i) {
        EXPECT_EQ((*again)[i].path, (*entries)[i].path);
        EXPECT_EQ((*again)[i].mode, (*entries)[i].mode) << (*entries)[i].path;
        EXPECT_EQ((*again)[i].uid, (*entries)[i].uid) << (*entries)[i].path;
        EXPECT_EQ((*again)[i].xattrs, (*entries)[i].xattrs) << (*entries)[i].path;
    }
}

// Rootless: the overlay is mounted with userxattr, so its opaque mark is user.overlay.opaque;
// the other namespace's mark is then an ordinary (dropped) xattr, not a mark.
TEST_F(ChangesetTest, OpaqueMarksFollowTheOverlayXattrNamespace) {
    fs::create_directories(upper / "user-marked");
    fs::create_directories(upper / "trusted-marked");
    ASSERT_EQ(::setxattr((upper / "user-marked").c_str(), "user.overlay.opaque", "y", 1, 0), 0);
    ASSERT_EQ(::setxattr((upper / "trusted-marked").c_str(), "trusted.overlay.opaque", "y", 1, 0),
              0);
    NormalizeOptions o;
    o.overlay_xattrs = OverlayXattrs::user;
    auto entries = diff_upper(upper, o);
    ASSERT_TRUE(entries) << entries.error();
    auto m = by_path(*entries);
    EXPECT_TRUE(m.contains("user-marked/.wh..wh..opq"));
    EXPECT_FALSE(m.contains("trusted-marked/.wh..wh..opq"));
    EXPECT_EQ(xattr_of(m["user-marked"], "user.overlay.opaque"), "<none>");

    o.overlay_xattrs = OverlayXattrs::trusted;
    entries = diff_upper(upper, o);
    ASSERT_TRUE(entries) << entries.error();
    m = by_path(*entries);
    EXPECT_FALSE(m.contains("user-marked/.wh..wh..opq"));
    EXPECT_TRUE(m.contains("trusted-marked/.wh..wh..opq"));

    // And back: a snapshot for a userxattr overlay carries user.overlay.opaque only.
    Fd out(::open((tmp / "layer.tar").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    layer::LayerOptions lo;
    lo.compression = layer::Compression::none;
    ASSERT_TRUE(layer::write_layer(*entries, lo, out.get()));
    fs::create_directories(tmp / "snap");
    Fd snap(::open((tmp / "snap").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ApplyOptions ao;
    ao.mode = ApplyMode::overlay;
    ao.overlay_xattrs = OverlayXattrs::user;
    auto applied = apply_layer(tmp / "layer.tar", snap.get(), ao);
    ASSERT_TRUE(applied) << applied.error();
    char v[4] = {};
    auto dir = (tmp / "snap/trusted-marked").string();
    EXPECT_EQ(::getxattr(dir.c_str(), "user.overlay.opaque", v, sizeof v), 1);
    EXPECT_EQ(::getxattr(dir.c_str(), "trusted.overlay.opaque", v, sizeof v), -1);
}

TEST_F(ChangesetTest, NoiseIsDropped) {
    for (const char* noise :
         {"var/log/dpkg.log", "var/log/apt/history.log", "var/log/apt/term.log",
          "var/log/apt/eipp.log.xz", "var/log/alternatives.log", "var/log/bootstrap.log",
          "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin",
          "var/cache/ldconfig/aux-cache", "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old",
          "var/cache/debconf/config.dat-old", "run/lock/x.pid", "tmp/build/out.o",
          "tmp/pip-xyz/setup.py"})
        write(upper / noise, "noise");
    write(upper / "var/lib/dpkg/status", "Package: x\n");
    write(upper / "var/log/app.log", "an application's own log is kept");
    write(upper / "etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0444);
    write(upper / "usr/lib/python3/__pycache__/m.cpython-311.pyc", "pyc");
    whiteout("tmp/lower-file");
    fs::create_directories(upper / "tmp/emptydir");

    auto entries = diff_upper(upper, {});
    ASSERT_TRUE(entries) << entries.error();
    auto m = by_path(*entries);
    for (const auto& [path, e] : m)
        EXPECT_FALSE(is_noise(path) && e.type == layer::Entry::Type::file &&
                     !path.starts_with("tmp/.wh."))
            << path;
    EXPECT_TRUE(m.contains("var/lib/dpkg/status"));
    EXPECT_TRUE(m.contains("var/log/app.log"));
    EXPECT_TRUE(m.contains("usr/lib/python3/__pycache__/m.cpython-311.pyc"))
        << "pyc files are kept";
    ASSERT_TRUE(m.contains("etc/machine-id"));
    EXPECT_EQ(m["etc/machine-id"].size, 0u);
    EXPECT_TRUE(m["etc/machine-id"].source.empty()) << "machine-id kept, emptied";
    EXPECT_EQ(m["etc/machine-id"].mode, 0444u);
    EXPECT_TRUE(m.contains("tmp/.wh.lower-file")) << "deleting a lower file in /tmp is kept";
    EXPECT_TRUE(m.contains("tmp"));
    EXPECT_FALSE(m.contains("tmp/emptydir"));
    EXPECT_FALSE(m.contains("tmp/build"));
    EXPECT_FALSE(m.contains("run/lock"));

    NormalizeOptions raw;
    raw.drop_noise = false;
    auto all = diff_upper(upper, raw);
    ASSERT_TRUE(all) << all.error();
    auto a = by_path(*all);
    EXPECT_TRUE(a.contains("var/log/dpkg.log"));
    EXPECT_TRUE(a.contains("tmp/build/out.o"));
    EXPECT_EQ(a["etc/machine-id"].size, 33u);
}

TEST_F(ChangesetTest, MountStubsAreDroppedOnlyWhenEmpty) {
    write(upper / "etc/resolv.conf", "");
    write(upper / "etc/hosts", "127.0.0.1 changed");
    fs::create_directories(upper / "cache");
    fs::create_directories(upper / "work/src");
    write(upper / "work/src/x", "x");
    NormalizeOptions o;
    o.mount_stubs = {"etc/resolv.conf", "/etc/hosts", "cache", "work/src"};
    auto entries = diff_upper(upper, o);
    ASSERT_TRUE(entries) << entries.error();
    auto m = by_path(*entries);
    EXPECT_FALSE(m.contains("etc/resolv.conf"));
    EXPECT_TRUE(m.contains("etc/hosts")) << "not empty: not a stub";
    EXPECT_FALSE(m.contains("cache"));
    EXPECT_TRUE(m.contains("work/src/x"));
}

TEST_F(ChangesetTest, MetacopyAndRedirectUppersAreRefused) {
    write(upper / "f", "");
    ASSERT_EQ(::setxattr((upper / "f").c_str(), "trusted.overlay.metacopy", "", 0, 0), 0);
    auto r = diff_upper(upper, {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("metacopy=off"), std::string::npos) << r.error();
    fs::remove(upper / "f");
    fs::create_directories(upper / "moved");
    ASSERT_EQ(::setxattr((upper / "moved").c_str(), "trusted.overlay.redirect", "/old", 4, 0), 0);
    r = diff_upper(upper, {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("redirect_dir=off"), std::string::npos) << r.error();
}

TEST(Changeset, NoiseList) {
    EXPECT_TRUE(is_noise("var/log/dpkg.log"));
    EXPECT_TRUE(is_noise("var/lib/dpkg/available-old"));
    EXPECT_TRUE(is_noise("tmp/x"));
    EXPECT_FALSE(is_noise("tmp"));
    EXPECT_FALSE(is_noise("var/lib/dpkg/status"));
    EXPECT_FALSE(is_noise("var/log/dpkg.log.1"));
    EXPECT_FALSE(is_noise("srv/var/log/dpkg.log"));
}

} // namespace
