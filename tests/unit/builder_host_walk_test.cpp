// The host walk under the copy planner: order, symlinks never followed, ignore rules, clear
// errors when the tree changes under it, and a parallel walk that shows what one thread shows.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

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

namespace {

// "rel type [-> target]" of every entry shown by a walk on `threads` threads.
std::vector<std::string> shown_with(const std::string& root, const IgnoreRules* rules,
                                    unsigned threads, std::string_view rel = "") {
    HostWalk walk(root, rules, threads);
    std::vector<std::string> out;
    auto r = walk.walk(rel, [&](const HostEntry& e) {
        char t = S_ISDIR(e.st.st_mode) ? 'd' : S_ISLNK(e.st.st_mode) ? 'l' : 'f';
        std::string line = std::string(e.rel) + " " + t;
        if (t == 'l') line += " -> " + factory::builder::link_target(e).value();
        if (t == 'f') line += " " + std::to_string(e.st.st_size);
        out.push_back(line);
        EXPECT_EQ(std::string(e.full), root + "/" + std::string(e.rel));
        return Descend::yes;
    });
    EXPECT_TRUE(r) << r.error();
    return out;
}

// Directories inside directories, names that sort differently bytewise and by component
// ("a-b" against "a/b"), symlinks, empty directories, ignored and re-included paths.
void make_mixed_tree(const fs::path& ctx) {
    for (int d = 0; d < 12; ++d) {
        auto top = ctx / ("d" + std::to_string(d));
        for (int s = 0; s < 5; ++s) {
            auto sub = top / ("s" + std::to_string(s));
            for (int f = 0; f < 4; ++f)
                write(sub / ("f" + std::to_string(f)),
                      std::string(static_cast<std::size_t>(f), 'x'));
            fs::create_directories(sub / "deeper/still");
            write(sub / "deeper/still/leaf", "leaf");
        }
    }
    write(ctx / "a/b", "ab");
    write(ctx / "a-b", "a-b");
    write(ctx / "a.b/c", "c");
    fs::create_directories(ctx / "empty");
    fs::create_directory_symlink("d1", ctx / "link-to-dir");
    fs::create_symlink("/etc/passwd", ctx / "d3/s2/abs-link");
    write(ctx / "build/out.o", "o");
    write(ctx / "logs/a.log", "a");
    write(ctx / "logs/keep/important.log", "i");
}

} // namespace

TEST(HostWalk, ParallelWalkShowsWhatOneThreadShows) {
    factory::testing::TestDir dir;
    make_mixed_tree(dir / "ctx");
    auto rules = IgnoreRules::parse("build\nlogs\n!logs/keep/important.log\n", ".factoryignore");
    const auto root = real(dir / "ctx");
    for (const IgnoreRules* r : std::vector<const IgnoreRules*>{nullptr, &rules}) {
        auto one = shown_with(root, r, 1);
        ASSERT_GT(one.size(), 400u);
        for (unsigned threads : {2u, 3u, 8u})
            EXPECT_EQ(shown_with(root, r, threads), one) << threads << " threads";
        EXPECT_EQ(shown_with(root, r, 4, "d3"), shown_with(root, r, 1, "d3"));
    }
    auto with_rules = shown_with(root, &rules, 2);
    EXPECT_NE(std::find(with_rules.begin(), with_rules.end(), "logs/keep/important.log f 1"),
              with_rules.end());
    EXPECT_EQ(std::count_if(with_rules.begin(), with_rules.end(),
                            [](const std::string& l) { return l.starts_with("build"); }),
              0);
    auto all = shown_with(root, nullptr, 2);
    auto at = [&](const std::string& line) {
        return std::find(all.begin(), all.end(), line) - all.begin();
    };
    EXPECT_LT(at("a d"), at("a/b f 2"));
    EXPECT_LT(at("a/b f 2"), at("a-b f 3"));
    EXPECT_NE(at("link-to-dir l -> d1"), static_cast<std::ptrdiff_t>(all.size()));
    EXPECT_NE(at("d3/s2/abs-link l -> /etc/passwd"), static_cast<std::ptrdiff_t>(all.size()));
}

TEST(HostWalk, ParallelWalkSkipsWhatTheVisitorDeclinesAndPassesItsExceptions) {
    factory::testing::TestDir dir;
    make_mixed_tree(dir / "ctx");
    HostWalk walk(real(dir / "ctx"), nullptr, 4);
    std::vector<std::string> seen;
    auto r = walk.walk("", [&](const HostEntry& e) {
        seen.push_back(std::string(e.rel));
        return e.rel.starts_with("d") ? Descend::no : Descend::yes;
    });
    ASSERT_TRUE(r) << r.error();
    for (const auto& s : seen)
        EXPECT_FALSE(s.starts_with("d") && s.find('/') != std::string::npos) << s;
    EXPECT_THROW(walk.walk("",
                           [](const HostEntry& e) -> Descend {
                               if (e.rel == "d5/s3/f2") throw std::runtime_error("visitor failed");
                               return Descend::yes;
                           }),
                 std::runtime_error);
    // The walk is reusable after a visitor threw (its workers were stopped and joined).
    EXPECT_EQ(shown_with(real(dir / "ctx"), nullptr, 4), shown_with(real(dir / "ctx"), nullptr, 1));
}

TEST(HostWalk, ParallelWalkOfManyDirectoriesStaysWithinFewDescriptors) {
    // Open directories are those below which one still waits to be opened: a wide tree of
    // 600 directories walks with 40 descriptors to spare.
    factory::testing::TestDir dir;
    for (int d = 0; d < 300; ++d)
        write(dir / "ctx" / ("d" + std::to_string(d)) / "sub/f", "f");
    struct rlimit old {};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    int used = 0;
    for (int fd = 0; fd < 1024; ++fd)
        if (::fcntl(fd, F_GETFD) != -1) used = fd + 1;
    struct rlimit tight = old;
    tight.rlim_cur = static_cast<rlim_t>(used + 40);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    auto walked = shown_with(real(dir / "ctx"), nullptr, 4);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
    EXPECT_EQ(walked.size(), 900u);
}
