#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "factory/builder/copy.hpp"
#include "factory/util/error.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

using factory::testing::write;

namespace fs = std::filesystem;
using factory::builder::CopyContext;
using factory::builder::plan_copy;
using factory::layer::Entry;

namespace {

factory::recipe::Step copy_step(std::vector<std::string> src, std::string dest) {
    factory::recipe::Step step;
    factory::recipe::CopyItem item;
    item.src = std::move(src);
    item.dest = std::move(dest);
    item.where = {"recipe.toml", 3, 8};
    step.copy.push_back(item);
    return step;
}

std::map<std::string, Entry> by_path(const std::vector<Entry>& entries) {
    std::map<std::string, Entry> out;
    for (const auto& e : entries)
        out[e.path] = e;
    return out;
}

} // namespace

TEST(PlanCopy, DirectoryContentsGoUnderDestWithNormalizedModes) {
    factory::testing::TestDir dir;
    write(dir / "ctx/src/a.sh", "#!/bin/sh\n", 0700);
    write(dir / "ctx/src/sub/b.txt", "b", 0600);
    fs::create_directories(dir / "ctx/src/empty");
    fs::create_symlink("a.sh", dir / "ctx/src/link");
    CopyContext ctx;
    ctx.context = dir / "ctx";
    auto entries = by_path(plan_copy(copy_step({"src"}, "/app/"), ctx));
    // app, app/a.sh, app/empty, app/link, app/sub, app/sub/b.txt
    ASSERT_EQ(entries.size(), 6u);
    EXPECT_EQ(entries.at("app").type, Entry::Type::dir);
    EXPECT_EQ(entries.at("app/a.sh").mode, 0755u);
    EXPECT_EQ(entries.at("app/sub/b.txt").mode, 0644u);
    EXPECT_EQ(entries.at("app/empty").type, Entry::Type::dir);
    EXPECT_EQ(entries.at("app/link").type, Entry::Type::symlink);
    EXPECT_EQ(entries.at("app/link").link, "a.sh");
    EXPECT_EQ(entries.at("app/sub/b.txt").uid, 0u);
}

TEST(PlanCopy, FileToDirectoryAndOverrides) {
    factory::testing::TestDir dir;
    write(dir / "ctx/tool", "x", 0644);
    CopyContext ctx;
    ctx.context = dir / "ctx";
    auto step = copy_step({"tool"}, "/usr/local/bin/");
    step.copy[0].mode = 0750;
    step.copy[0].uid = 1000;
    step.copy[0].gid = 100;
    auto entries = by_path(plan_copy(step, ctx));
    const auto& e = entries.at("usr/local/bin/tool");
    EXPECT_EQ(e.mode, 0750u);
    EXPECT_EQ(e.uid, 1000u);
    EXPECT_EQ(e.gid, 100u);
    EXPECT_EQ(entries.at("usr/local").mode, 0755u); // implied parents: 0755 root
    EXPECT_EQ(entries.at("usr/local").uid, 0u);
}

TEST(PlanCopy, HardlinkedFilesBecomeOneFileAndLinks) {
    factory::testing::TestDir dir;
    write(dir / "ctx/d/a", "same");
    fs::create_hard_link(dir / "ctx/d/a", dir / "ctx/d/b");
    CopyContext ctx;
    ctx.context = dir / "ctx";
    auto entries = by_path(plan_copy(copy_step({"d"}, "/d"), ctx));
    EXPECT_EQ(entries.at("d/a").type, Entry::Type::file);
    EXPECT_EQ(entries.at("d/b").type, Entry::Type::hardlink);
    EXPECT_EQ(entries.at("d/b").link, "d/a");
}

TEST(PlanCopy, EscapingSourcesAreRecipeErrors) {
    factory::testing::TestDir dir;
    write(dir / "outside/secret", "s");
    fs::create_directories(dir / "ctx");
    fs::create_symlink(dir / "outside/secret", dir / "ctx/link");
    CopyContext ctx;
    ctx.context = dir / "ctx";
    try {
        plan_copy(copy_step({"link"}, "/x"), ctx);
        FAIL() << "expected an error";
    } catch (const factory::Error& e) {
        EXPECT_EQ(e.code(), factory::ExitCode::usage);
        std::string msg = e.what();
        EXPECT_TRUE(msg.starts_with("recipe.toml:3:8: copy: source 'link' resolves to ")) << msg;
        EXPECT_NE(msg.find("outside the context"), std::string::npos) << msg;
    }
    try {
        plan_copy(copy_step({"missing"}, "/x"), ctx);
        FAIL() << "expected an error";
    } catch (const factory::Error& e) {
        EXPECT_TRUE(std::string(e.what()).starts_with(
            "recipe.toml:3:8: copy: source 'missing' does not exist in the context"))
            << e.what();
    }
}

TEST(PlanCopy, GlobsAndIgnoreRules) {
    factory::testing::TestDir dir;
    write(dir / "ctx/a.c", "a");
    write(dir / "ctx/b.c", "b");
    write(dir / "ctx/c.h", "c");
    write(dir / "ctx/gen.c", "g");
    auto ignore = factory::IgnoreRules::parse("gen.c\n", "ignore");
    CopyContext ctx;
    ctx.context = dir / "ctx";
    ctx.ignore = &ignore;
    auto entries = by_path(plan_copy(copy_step({"*.c"}, "/src/"), ctx));
    EXPECT_TRUE(entries.count("src/a.c"));
    EXPECT_TRUE(entries.count("src/b.c"));
    EXPECT_FALSE(entries.count("src/gen.c"));
    EXPECT_FALSE(entries.count("src/c.h"));
}

// docs/recipe.md "Globs": the rules of several sources, Docker's COPY for one match, `**`
// keeping the path below the literal prefix, and collisions refused.
TEST(PlanCopy, GlobDestRules) {
    factory::testing::TestDir dir;
    write(dir / "ctx/t/one.txt", "top");
    write(dir / "ctx/t/a/one.txt", "nested");
    write(dir / "ctx/t/a/two.txt", "two");
    write(dir / "ctx/t/b/two.txt", "other two");
    write(dir / "ctx/t/only.md", "md");
    CopyContext ctx;
    ctx.context = dir / "ctx";
    auto error_of = [&](std::vector<std::string> src, const std::string& dest) {
        try {
            plan_copy(copy_step(std::move(src), dest), ctx);
        } catch (const factory::Error& e) {
            EXPECT_EQ(e.code(), factory::ExitCode::usage);
            return std::string(e.what());
        }
        return std::string("no error");
    };
    // Several matches need a directory dest, like several sources.
    EXPECT_EQ(error_of({"t/a/*.txt"}, "/single"),
              "recipe.toml:3:8: copy: 't/a/*.txt' matches 2 sources ('t/a/one.txt', "
              "'t/a/two.txt'): copying several sources needs a directory dest ending in '/': "
              "\"/single\"");
    // One match and a dest without '/': that file, as a literal source would be.
    auto one = by_path(plan_copy(copy_step({"t/*.md"}, "/single"), ctx));
    ASSERT_TRUE(one.count("single"));
    EXPECT_EQ(one.at("single").type, Entry::Type::file);
    EXPECT_EQ(one.size(), 1u);
    // `**` keeps the path below the literal prefix "t".
    auto deep = by_path(plan_copy(copy_step({"t/**/one.txt"}, "/txt/"), ctx));
    EXPECT_TRUE(deep.count("txt/one.txt"));
    EXPECT_TRUE(deep.count("txt/a/one.txt"));
    EXPECT_EQ(deep.at("txt/a").type, Entry::Type::dir);
    EXPECT_EQ(deep.size(), 4u); // txt, txt/a, txt/a/one.txt, txt/one.txt
    // Without `**`, matches keep their names: two of one name collide.
    EXPECT_EQ(error_of({"t/*/two.txt"}, "/d/"),
              "recipe.toml:3:8: copy: 't/a/two.txt' and 't/b/two.txt' would both be copied "
              "to /d/two.txt");
    EXPECT_EQ(error_of({"t/a/one.txt", "t/one.txt"}, "/d/"),
              "recipe.toml:3:8: copy: 't/a/one.txt' and 't/one.txt' would both be copied to "
              "/d/one.txt");
    // Directories' contents merge into dest; a file in both is a collision.
    EXPECT_EQ(error_of({"t/a", "t/b"}, "/m/"),
              "recipe.toml:3:8: copy: 't/a' and 't/b' would both be copied to /m/two.txt");
}

TEST(PlanCopy, FromStageTreeFollowsSymlinkedParents) {
    factory::builder::Tree lower;
    Entry usr;
    usr.path = "usr";
    usr.type = Entry::Type::dir;
    usr.mode = 0755;
    Entry usrbin = usr;
    usrbin.path = "usr/bin";
    Entry bin;
    bin.path = "bin";
    bin.type = Entry::Type::symlink;
    bin.link = "usr/bin";
    lower.apply({bin, usr, usrbin});
    factory::testing::TestDir dir;
    write(dir / "ctx/tool", "x", 0755);
    CopyContext ctx;
    ctx.context = dir / "ctx";
    ctx.lower = &lower;
    auto entries = by_path(plan_copy(copy_step({"tool"}, "/bin/tool"), ctx));
    EXPECT_TRUE(entries.count("usr/bin/tool"));
    EXPECT_FALSE(entries.count("bin"));
}

// The plan comes out in canonical layer order (a directory right before its children, '/' below
// every other byte) and, when asked, with the lstat of each host file at the entry's index.
TEST(PlanCopy, CanonicalOrderAndOneLstatPerEntry) {
    factory::testing::TestDir dir;
    write(dir / "ctx/t/a/b", "1");
    write(dir / "ctx/t/a-b", "22");
    write(dir / "ctx/t/a.txt", "333");
    fs::create_symlink("a.txt", dir / "ctx/t/l");
    CopyContext ctx;
    ctx.context = dir / "ctx";
    std::vector<struct stat> stats;
    ctx.stats = &stats;
    auto entries = plan_copy(copy_step({"t"}, "/x/"), ctx);
    std::vector<std::string> paths;
    for (const auto& e : entries)
        paths.push_back(e.path);
    EXPECT_EQ(paths, (std::vector<std::string>{"x", "x/a", "x/a/b", "x/a-b", "x/a.txt", "x/l"}));
    ASSERT_EQ(stats.size(), entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].type != Entry::Type::file) {
            EXPECT_EQ(stats[i].st_mode, 0u) << entries[i].path;
            continue;
        }
        struct stat st {};
        ASSERT_EQ(::lstat(entries[i].source.c_str(), &st), 0) << entries[i].source;
        EXPECT_EQ(stats[i].st_ino, st.st_ino) << entries[i].path;
        EXPECT_EQ(stats[i].st_size, static_cast<off_t>(entries[i].size)) << entries[i].path;
    }
}
