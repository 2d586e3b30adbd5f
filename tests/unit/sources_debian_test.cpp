// sources/debian: mmdebstrap's command line, the host's default mirror, the normalization of a
// bootstrapped tree into layer entries, the installed-package list; and, as root with the
// Debian mirror reachable, a real minbase bootstrap (one per run of this file; a second one,
// to compare, with FACTORY_SLOW_TESTS=1).
#include "factory/sources/debian.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <fstream>
#include <map>
#include <optional>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "tests/unit/test_util.hpp"

using factory::testing::write;

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::sources;

namespace {

using Strings = std::vector<std::string>;

std::map<std::string, layer::Entry> by_path(const std::vector<layer::Entry>& entries) {
    std::map<std::string, layer::Entry> out;
    for (const auto& e : entries)
        out[e.path] = e;
    return out;
}

// Everything of an entry that reaches the layer, content as its sha256: one line per entry.
std::string describe(const layer::Entry& e) {
    static const char* types[] = {"file", "dir", "symlink", "hardlink"};
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", e.mode);
    std::string line = e.path + " " + types[static_cast<int>(e.type)] + " " + mode + " " +
                       std::to_string(e.uid) + ":" + std::to_string(e.gid);
    if (!e.link.empty()) line += " -> " + e.link;
    if (e.type == layer::Entry::Type::file)
        line +=
            " " + (e.source.empty() ? Sha256::hex(e.data) : sha256_file(e.source).value_or("?"));
    for (const auto& [name, value] : e.xattrs)
        line += " " + name + "=" + Sha256::hex(value).substr(0, 16);
    return line;
}

Strings describe_all(const std::vector<layer::Entry>& entries) {
    Strings out;
    for (const auto& e : entries)
        out.push_back(describe(e));
    return out;
}

// --- mmdebstrap's command line -----------------------------------------------------------------

TEST(SourcesDebian, MmdebstrapArgs) {
    DebianSpec spec;
    spec.suite = "bookworm";
    spec.include = {"git", "ca-certificates", "git"};
    spec.components = {"main", "contrib"};
    spec.architecture = "arm64";
    spec.aptopts = {"Acquire::Languages \"none\""};
    auto args = mmdebstrap_args(spec, "/w/debian-x", "http://deb.debian.org/debian");
    ASSERT_TRUE(args) << args.error();
    EXPECT_EQ(*args, (Strings{"--mode=root", "--format=directory", "--variant=minbase",
                              "--include=ca-certificates,git", "--components=main,contrib",
                              "--architectures=arm64", "--aptopt=Acquire::Languages \"none\"", "--",
                              "bookworm", "/w/debian-x", "http://deb.debian.org/debian"}));

    spec = DebianSpec{};
    spec.suite = "sid";
    spec.variant = "buildd";
    args = mmdebstrap_args(spec, "/t", "https://m/debian");
    ASSERT_TRUE(args) << args.error();
    EXPECT_EQ(*args, (Strings{"--mode=root", "--format=directory", "--variant=buildd",
                              "--components=main", "--", "sid", "/t", "https://m/debian"}));
}

TEST(SourcesDebian, MmdebstrapArgsRefuseWhatCouldBeAnOption) {
    auto error = [](DebianSpec spec, std::string mirror = "http://deb.debian.org/debian") {
        if (spec.suite.empty()) spec.suite = "bookworm";
        auto args = mmdebstrap_args(spec, "/t", mirror);
        return args ? std::string("accepted") : args.error();
    };
    DebianSpec s;
    s.include = {"--customize-hook=touch /x"};
    EXPECT_EQ(error(s), "invalid package name \"--customize-hook=touch /x\"");
    s = {};
    s.suite = "-x";
    EXPECT_EQ(error(s), "invalid suite \"-x\"");
    s = {};
    s.variant = "custom";
    EXPECT_EQ(error(s), "invalid variant \"custom\"");
    s = {};
    s.components = {"main,contrib"};
    EXPECT_EQ(error(s), "invalid component \"main,contrib\"");
    s = {};
    s.components = {};
    EXPECT_EQ(error(s), "no component");
    s = {};
    s.architecture = "amd64 --x";
    EXPECT_EQ(error(s), "invalid architecture \"amd64 --x\"");
    EXPECT_EQ(error({}, "http://a/debian,http://b/debian"),
              "invalid mirror \"http://a/debian,http://b/debian\"");
    EXPECT_EQ(error({}, "deb http://a/debian bookworm main"),
              "invalid mirror \"deb http://a/debian bookworm main\"");
    s = {};
    s.aptopts = {"A \"1\";\nB \"2\""};
    EXPECT_EQ(error(s), "invalid apt option \"A \\\"1\\\";\\x0aB \\\"2\\\"\"");
}

// --- the host's mirror -----------------------------------------------------------------------

TEST(SourcesDebian, DefaultMirrorFromTheHostsSources) {
    factory::testing::TestDir host;
    // Nothing configured: Debian's redirector.
    EXPECT_EQ(default_mirror("bookworm", host.path()), "http://deb.debian.org/debian");

    write(host / "etc/apt/sources.list",
          "# deb http://commented.example/debian bookworm main\n"
          "deb-src http://src.example/debian bookworm main\n"
          "deb [arch=amd64 signed-by=/k.gpg] http://third-party.example/apt stable main\n"
          "deb cdrom:[Debian]/ bookworm main\n");
    write(host / "etc/apt/sources.list.d/a.sources",
          "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nEnabled: no\n\n"
          "Types: deb deb-src\n"
          "URIs: http://mirror.example:3142/debian/\n"
          "Suites: bookworm bookworm-updates\nComponents: main\n\n"
          "types: deb\nuris: http://security.example/debian-security\n"
          "suites:\n bookworm-security\n");
    write(host / "etc/apt/sources.list.d/b.list", "deb https://b.example/debian trixie main\n");
    write(host / "etc/apt/sources.list.d/c.list.disabled",
          "deb http://off.example/debian sid main\n");
    // The first deb entry listing the suite …
    EXPECT_EQ(default_mirror("bookworm", host.path()), "http://mirror.example:3142/debian/");
    EXPECT_EQ(default_mirror("trixie", host.path()), "https://b.example/debian");
    EXPECT_EQ(default_mirror("bookworm-security", host.path()),
              "http://security.example/debian-security");
    // … else the first that looks like a Debian archive (not the third-party one, not the
    // disabled or commented ones).
    EXPECT_EQ(default_mirror("sid", host.path()), "http://mirror.example:3142/debian/");

    DebianSpec spec;
    spec.suite = "sid";
    EXPECT_EQ(resolve_mirror(spec, host.path()), "http://mirror.example:3142/debian/");
    spec.mirror = "http://pinned.example/debian";
    EXPECT_EQ(resolve_mirror(spec, host.path()), "http://pinned.example/debian");
}

// --- installed packages ------------------------------------------------------------------------

TEST(SourcesDebian, ResolvedPackages) {
    factory::testing::TestDir root;
    write(root / "var/lib/dpkg/arch", "amd64\ni386\n");
    write(root / "var/lib/dpkg/status",
          "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n"
          "Version: 1:1.2.13.dfsg-1\nDescription: compression\n library\n\n"
          "Package: base-files\nStatus: install ok installed\nPriority: required\n"
          "Architecture: amd64\nVersion: 12.4+deb12u11\n\n"
          "Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9\n\n"
          "Package: removed\nStatus: deinstall ok config-files\nArchitecture: amd64\n"
          "Version: 1.0\n\n"
          "Package: tzdata\nStatus: install ok installed\nArchitecture: all\n"
          "Version: 2025b-0+deb12u1\n");
    auto list = resolved_packages(root.path());
    ASSERT_TRUE(list) << list.error();
    EXPECT_EQ(*list, "base-files=12.4+deb12u11\nlibc6:i386=2.36-9\ntzdata=2025b-0+deb12u1\n"
                     "zlib1g=1:1.2.13.dfsg-1\n");

    factory::testing::TestDir empty;
    auto missing = resolved_packages(empty.path());
    ASSERT_FALSE(missing);
    EXPECT_TRUE(missing.error().starts_with("cannot read the package list: ")) << missing.error();
}

// --- normalization of a tree -------------------------------------------------------------------

class DebianEntries : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!factory::testing::privileged()) GTEST_SKIP() << "needs root (device nodes)";
    }
    factory::testing::TestDir tree;
};

TEST_F(DebianEntries, DropsDevicesHostFilesAndNoise) {
    const fs::path& t = tree.path();
    fs::create_directories(t / "dev/pts");
    ASSERT_EQ(::mknod((t / "dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(::mknod((t / "dev/weird").c_str(), S_IFCHR | 0600, makedev(0, 0)), 0);
    fs::create_symlink("/proc/self/fd", t / "dev/fd");
    ::chmod((t / "dev").c_str(), 0755);
    write(t / "etc/hostname", "buildhost\n", 0755);
    write(t / "etc/resolv.conf", "nameserver 10.0.0.1\n");
    write(t / "etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0444);
    write(t / "etc/os-release", "ID=debian\n");
    fs::create_directories(t / "run/lock");
    ::chmod((t / "run/lock").c_str(), 01777);
    write(t / "run/leftover.pid", "42\n");
    write(t / "tmp/x", "x");
    write(t / "var/log/dpkg.log", "2025-01-01 install …\n");
    write(t / "var/lib/dpkg/status-old", "old\n");
    write(t / "var/lib/dpkg/status", "Package: x\n");
    write(t / "usr/bin/tool", "#!/bin/sh\n", 0755);
    ASSERT_EQ(::link((t / "usr/bin/tool").c_str(), (t / "usr/bin/tool2").c_str()), 0);
    ASSERT_EQ(::mkfifo((t / "var/fifo").c_str(), 0600), 0);

    std::vector<std::string> skipped;
    auto entries = debian_entries(t, 0, [&](const std::string& path, const std::string& why) {
        skipped.push_back(path + ": " + why);
    });
    ASSERT_TRUE(entries) << entries.error();
    auto e = by_path(*entries);
    Strings paths;
    for (const auto& x : *entries)
        paths.push_back(x.path);
    EXPECT_EQ(paths, (Strings{"dev", "etc", "etc/machine-id", "etc/os-release", "run", "run/lock",
                              "tmp", "usr", "usr/bin", "usr/bin/tool", "usr/bin/tool2", "var",
                              "var/lib", "var/lib/dpkg", "var/lib/dpkg/status", "var/log"}));
    EXPECT_EQ(e["dev"].mode, 0755u);
    EXPECT_EQ(e["run/lock"].mode, 01777u);
    EXPECT_EQ(e["etc/machine-id"].source, ""); // emptied, mode kept
    EXPECT_EQ(e["etc/machine-id"].data, "");
    EXPECT_EQ(e["etc/machine-id"].mode, 0444u);
    EXPECT_EQ(e["usr/bin/tool"].source, (t / "usr/bin/tool").string());
    EXPECT_EQ(e["usr/bin/tool2"].type, layer::Entry::Type::hardlink);
    EXPECT_EQ(e["usr/bin/tool2"].link, "usr/bin/tool");
    // The FIFO is reported; dev/'s devices are expected and aren't.
    EXPECT_EQ(skipped, (Strings{"var/fifo: fifo"}));
}

TEST_F(DebianEntries, AHardlinkToADroppedFileTakesItsPlace) {
    const fs::path& t = tree.path();
    write(t / "var/log/dpkg.log", "log\n");
    fs::create_directories(t / "var/x");
    ASSERT_EQ(::link((t / "var/log/dpkg.log").c_str(), (t / "var/x/a").c_str()), 0);
    ASSERT_EQ(::link((t / "var/log/dpkg.log").c_str(), (t / "var/x/b").c_str()), 0);
    auto entries = debian_entries(t, 0);
    ASSERT_TRUE(entries) << entries.error();
    auto e = by_path(*entries);
    EXPECT_FALSE(e.contains("var/log/dpkg.log"));
    EXPECT_EQ(e["var/x/a"].type, layer::Entry::Type::file);
    EXPECT_EQ(e["var/x/a"].source, (t / "var/log/dpkg.log").string());
    EXPECT_EQ(e["var/x/b"].type, layer::Entry::Type::hardlink);
    EXPECT_EQ(e["var/x/b"].link, "var/x/a");
}

TEST_F(DebianEntries, WhiteoutNamesAreRefused) {
    write(tree / "etc/.wh.passwd", "");
    auto entries = debian_entries(tree.path(), 0);
    ASSERT_FALSE(entries);
    EXPECT_EQ(entries.error(), tree.path().string() +
                                   ": etc/.wh.passwd: a base file system can't hold a whiteout "
                                   "name (\".wh.\")");
    factory::testing::TestDir other;
    ASSERT_EQ(::mknod((other / "oops").c_str(), S_IFCHR | 0600, makedev(0, 0)), 0);
    entries = debian_entries(other.path(), 0);
    ASSERT_FALSE(entries);
    EXPECT_EQ(entries.error(), other.path().string() +
                                   ": .wh.oops: a base file system can't hold a whiteout name "
                                   "(\".wh.\")");
}

// --- a real bootstrap ----------------------------------------------------------------------------

// One minbase bookworm bootstrap shared by the tests below (~20-60 s through the mirror).
class DebianBootstrap : public ::testing::Test {
  protected:
    static constexpr std::int64_t epoch = 1700000000;

    // Per process: ctest runs each test in a process of its own, two at a time.
    static fs::path work() {
        return fs::temp_directory_path() /
               ("factory-test-DebianBootstrap-" + std::to_string(::getpid()));
    }

    static std::string why_skip() {
        if (!factory::testing::privileged()) return "needs root (mmdebstrap --mode=root)";
        if (::access("/usr/bin/mmdebstrap", X_OK) != 0) return "needs mmdebstrap";
        if (::getenv("FACTORY_SKIP_NETWORK_TESTS")) return "FACTORY_SKIP_NETWORK_TESTS is set";
        return "";
    }

    static DebianSpec spec() {
        DebianSpec s;
        s.suite = "bookworm";
        return s;
    }

    // Bootstraps once per process; later calls return the same result.
    static const Result<DebianRootfs>& shared() {
        static std::optional<Result<DebianRootfs>> result;
        if (!result) {
            fs::remove_all(work());
            lines().clear();
            result = bootstrap_debian(spec(), work(), epoch,
                                      [](std::string_view line) { lines().emplace_back(line); });
        }
        return *result;
    }
    static Strings& lines() {
        static Strings l;
        return l;
    }

    static void TearDownTestSuite() {
        if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(work());
    }

    void SetUp() override {
        if (auto why = why_skip(); !why.empty()) GTEST_SKIP() << why;
    }
};

TEST_F(DebianBootstrap, MinbaseBookworm) {
    const auto& rootfs = shared();
    ASSERT_TRUE(rootfs) << rootfs.error();
    EXPECT_EQ(rootfs->dir.parent_path(), work());
    EXPECT_TRUE(rootfs->dir.filename().string().starts_with("debian-"));
    EXPECT_EQ(rootfs->mirror, resolve_mirror(spec()));
    EXPECT_TRUE(fs::exists(rootfs->dir / "usr/bin/dpkg"));
    EXPECT_TRUE(fs::is_symlink(rootfs->dir / "bin")); // merged /usr
    ASSERT_FALSE(lines().empty());
    EXPECT_TRUE(lines().back().starts_with("I: success in ")) << lines().back();
    // Nothing it mounted inside the tree is visible here (its own mount namespace).
    auto mounts = read_file("/proc/self/mountinfo", 16 << 20);
    ASSERT_TRUE(mounts);
    EXPECT_EQ(mounts->find(rootfs->dir.string()), std::string::npos);

    // The layer entries: no devices, no host files (one bootstrap serves every check: ctest
    // runs each test in a process of its own).
    Strings skipped;
    auto entries =
        debian_entries(rootfs->dir, 0, [&](const std::string& p, const std::string& why) {
            skipped.push_back(p + ": " + why);
        });
    ASSERT_TRUE(entries) << entries.error();
    EXPECT_TRUE(skipped.empty()) << skipped.front();
    auto e = by_path(*entries);
    ASSERT_TRUE(e.contains("dev"));
    EXPECT_EQ(e["dev"].type, layer::Entry::Type::dir);
    for (const auto& x : *entries) {
        EXPECT_FALSE(x.path.starts_with("dev/")) << x.path;
        if (x.type == layer::Entry::Type::file && !x.source.empty()) {
            struct stat st {};
            ASSERT_EQ(::lstat(x.source.c_str(), &st), 0) << x.source;
            EXPECT_TRUE(S_ISREG(st.st_mode)) << x.path;
        }
    }
    EXPECT_FALSE(e.contains("etc/hostname"));
    EXPECT_FALSE(e.contains("etc/resolv.conf"));
    EXPECT_FALSE(e.contains("var/log/dpkg.log"));
    EXPECT_TRUE(e.contains("run/lock"));
    EXPECT_TRUE(e.contains("etc/passwd"));
    EXPECT_EQ(e["bin"].type, layer::Entry::Type::symlink);
    EXPECT_EQ(e["bin"].link, "usr/bin");
    // /etc/shadow's "last change" is days since 1970: SOURCE_DATE_EPOCH's day, not today's.
    auto shadow = read_file(rootfs->dir / "etc/shadow");
    ASSERT_TRUE(shadow);
    EXPECT_NE(shadow->find(":" + std::to_string(epoch / 86400) + ":"), std::string::npos)
        << *shadow;

    // The packages it holds, for a lock.
    auto list = resolved_packages(rootfs->dir);
    ASSERT_TRUE(list) << list.error();
    for (const char* p : {"\nbase-files=12", "\ndpkg=1.21", "\napt=2.6", "\nlibc6=2.36"})
        EXPECT_NE(("\n" + *list).find(p), std::string::npos) << p << " in\n" << *list;
    EXPECT_EQ(list->find(":amd64="), std::string::npos); // native packages are not qualified
}

// Cancelled while installing the essential packages, when mmdebstrap has /proc, /sys,
// /dev/pts and /dev/shm mounted inside the tree: nothing stays mounted, the tree is removed,
// and removing it went nowhere near the host's /sys.
TEST_F(DebianBootstrap, CancelledBootstrapLeavesNothing) {
    std::atomic<bool> cancel{false};
    fs::path w = work() / "cancel";
    BootstrapControl control;
    control.cancel = &cancel;
    auto r = bootstrap_debian(
        spec(), w, epoch,
        [&](std::string_view line) {
            if (line.starts_with("I: installing")) cancel = true;
        },
        control);
    ASSERT_TRUE(cancel) << "never reached the installation";
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "mmdebstrap bookworm: cancelled");
    EXPECT_TRUE(fs::is_empty(w)); // the debian-XXXXXX directory is gone
    auto mounts = read_file("/proc/self/mountinfo", 16 << 20);
    ASSERT_TRUE(mounts);
    EXPECT_EQ(mounts->find(w.string()), std::string::npos);
    EXPECT_TRUE(fs::exists("/sys/kernel"));
    EXPECT_TRUE(fs::exists("/dev/null"));
}

// Two bootstraps with the same SOURCE_DATE_EPOCH: the same entries, bit for bit (the mirror
// must not change in between). Slow: a second bootstrap.
TEST_F(DebianBootstrap, TwoBootstrapsGiveTheSameEntries) {
    if (!::getenv("FACTORY_SLOW_TESTS")) GTEST_SKIP() << "set FACTORY_SLOW_TESTS=1 (2nd bootstrap)";
    const auto& first = shared();
    ASSERT_TRUE(first) << first.error();
    auto second = bootstrap_debian(spec(), work(), epoch, {});
    ASSERT_TRUE(second) << second.error();
    auto a = debian_entries(first->dir, 0);
    auto b = debian_entries(second->dir, 0);
    ASSERT_TRUE(a) << a.error();
    ASSERT_TRUE(b) << b.error();
    Strings da = describe_all(*a), db = describe_all(*b);
    EXPECT_EQ(da.size(), db.size());
    for (std::size_t i = 0; i < std::min(da.size(), db.size()); ++i)
        ASSERT_EQ(da[i], db[i]) << "first difference at entry " << i;
    EXPECT_EQ(resolved_packages(first->dir).value_or("a"),
              resolved_packages(second->dir).value_or("b"));
}

} // namespace
