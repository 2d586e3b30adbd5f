// The host walk under the copy planner: order, symlinks never followed, ignore rules, and
// clear errors when the tree changes under it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "factory/builder/host_walk.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

namespace fs = std::filesystem;
using factory::IgnoreRules;
using factory::builder::Descend;
using factory::builder::HostEntry;
using factory::builder::HostWalk;
using factory::testing::write;

namespace {

// "rel type" lines of every entry shown, in the order shown: d(ir), f(ile), l(ink).
std::vector<std::string> shown(HostWalk& walk, std::string_view rel = "") {
    std::vector<std::string> out;
    auto r = walk.walk(rel, [&](const HostEntry& e) {
        char t = S_ISDIR(e.st.st_mode) ? 'd' : S_ISLNK(e.st.st_mode) ? 'l' : 'f';
        out.push_back(std::string(e.rel) + " " + t);
        EXPECT_EQ(std::string(e.full), walk.root() + "/" + std::string(e.rel));
        EXPECT_TRUE(std::string_view(e.rel).ends_with(e.name));
        return Descend::yes;
    });
    EXPECT_TRUE(r) << r.error();
    return out;
}

std::string real(const fs::path& p) {
    return fs::canonical(p).string();
}

} // namespace

TEST(HostWalk, DirectoriesBeforeTheirContentsInByteOrder) {
    factory::testing::TestDir dir;
    write(dir / "ctx/b", "b");
    write(dir / "ctx/a/z", "z");
    write(dir / "ctx/a/B", "B");
    write(dir / "ctx/a.txt", "t");
    fs::create_directories(dir / "ctx/a/empty");
    HostWalk walk(real(dir / "ctx"), nullptr);
    EXPECT_EQ(shown(walk),
              (std::vector<std::string>{"a d", "a/B f", "a/empty d", "a/z f", "a.txt f", "b f"}));
    EXPECT_EQ(shown(walk, "a"), (std::vector<std::string>{"a/B f", "a/empty d", "a/z f"}));
}

TEST(HostWalk, SymlinksAreShownNeverFollowed) {
    factory::testing::TestDir dir;
    write(dir / "outside/secret", "s");
    write(dir / "ctx/real/f", "f");
    fs::create_directory_symlink(dir / "outside", dir / "ctx/out");
    fs::create_directory_symlink("real", dir / "ctx/in");
    HostWalk walk(real(dir / "ctx"), nullptr);
    // The visitor asks to descend everywhere: a symlink to a directory is still a leaf.
    EXPECT_EQ(shown(walk), (std::vector<std::string>{"in l", "out l", "real d", "real/f f"}));
    std::string target;
    auto r = walk.walk("", [&](const HostEntry& e) {
        if (e.name == "out")
            target = factory::builder::readlink_at(e.dir_fd, e.name, e.full).value();
        return Descend::yes;
    });
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(target, (dir / "outside").string());
}

TEST(HostWalk, SymlinkOnTheWayToTheStartIsAnError) {
    factory::testing::TestDir dir;
    write(dir / "ctx/real/sub/f", "f");
    fs::create_directory_symlink("real", dir / "ctx/in");
    HostWalk walk(real(dir / "ctx"), nullptr);
    auto r = walk.walk("in/sub", [](const HostEntry&) { return Descend::yes; });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().rfind("cannot open directory " + real(dir / "ctx") + "/in: ", 0), 0u)
        << r.error();
    auto st = walk.stat("in");
    ASSERT_TRUE(st) << st.error();
    EXPECT_TRUE(S_ISLNK(st->st_mode));
    EXPECT_FALSE(walk.stat("in/sub"));
}

TEST(HostWalk, IgnoredPathsAreLeftOutAndReincludedOnesKept) {
    factory::testing::TestDir dir;
    write(dir / "ctx/keep.txt", "k");
    write(dir / "ctx/build/out.o", "o");
    write(dir / "ctx/logs/a.log", "a");
    write(dir / "ctx/logs/important.log", "i");
    auto rules = IgnoreRules::parse("build\nlogs\n!logs/important.log\n", ".factoryignore");
    HostWalk walk(real(dir / "ctx"), &rules);
    // logs/ is ignored but walked for the re-included file; it isn't shown itself.
    EXPECT_EQ(shown(walk), (std::vector<std::string>{"keep.txt f", "logs/important.log f"}));
}

TEST(HostWalk, FileRemovedBetweenReadAndStatIsAClearError) {
    factory::testing::TestDir dir;
    write(dir / "ctx/a", "a");
    write(dir / "ctx/b", "b");
    HostWalk walk(real(dir / "ctx"), nullptr);
    auto r = walk.walk("", [&](const HostEntry& e) {
        if (e.name == "a") fs::remove(dir / "ctx/b"); // listed already, stat'ed next
        return Descend::yes;
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "cannot stat " + real(dir / "ctx") +
                             "/b: No such file or directory (it was removed while its directory "
                             "was being read)");
}

TEST(HostWalk, DirectorySwappedAfterItsStatIsAnError) {
    factory::testing::TestDir dir;
    write(dir / "ctx/d/f", "f");
    HostWalk walk(real(dir / "ctx"), nullptr);
    auto r = walk.walk("", [&](const HostEntry& e) {
        if (e.name == "d") { // between its lstat and its open: another directory in its place
            fs::rename(dir / "ctx/d", dir / "ctx/d.old");
            fs::create_directory(dir / "ctx/d");
        }
        return Descend::yes;
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "directory " + real(dir / "ctx") + "/d changed while it was read");
}

TEST(HostWalk, DirectoryReplacedBySymlinkIsNotFollowed) {
    factory::testing::TestDir dir;
    write(dir / "ctx/d/f", "f");
    write(dir / "outside/secret", "s");
    HostWalk walk(real(dir / "ctx"), nullptr);
    std::vector<std::string> seen;
    auto r = walk.walk("", [&](const HostEntry& e) {
        seen.push_back(std::string(e.rel));
        if (e.name == "d") {
            fs::rename(dir / "ctx/d", dir / "ctx/d.old");
            fs::create_directory_symlink(dir / "outside", dir / "ctx/d");
        }
        return Descend::yes;
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().rfind("cannot open directory " + real(dir / "ctx") + "/d: ", 0), 0u)
        << r.error();
    EXPECT_EQ(seen, std::vector<std::string>{"d"}); // nothing of outside/ was shown
}

TEST(HostWalk, ManyEntriesInOneDirectory) {
    // More names than one getdents64 buffer holds.
    factory::testing::TestDir dir;
    fs::create_directories(dir / "ctx");
    std::vector<std::string> want;
    for (int i = 0; i < 3000; ++i) {
        char name[64];
        std::snprintf(name, sizeof name, "file-with-a-long-name-%05d", i);
        write(dir / "ctx" / name, "");
        want.push_back(std::string(name) + " f");
    }
    HostWalk walk(real(dir / "ctx"), nullptr);
    EXPECT_EQ(shown(walk), want);
}
