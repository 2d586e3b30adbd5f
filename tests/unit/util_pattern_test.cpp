#include <gtest/gtest.h>

#include "factory/util/error.hpp"
#include "factory/util/pattern.hpp"

using factory::IgnoreRules;
using factory::path_match;

TEST(PathMatch, StarStaysInOneComponent) {
    EXPECT_TRUE(path_match("*.c", "main.c"));
    EXPECT_FALSE(path_match("*.c", "src/main.c"));
    EXPECT_TRUE(path_match("src/*.c", "src/main.c"));
    EXPECT_FALSE(path_match("src/*.c", "src/a/main.c"));
}

TEST(PathMatch, DoubleStarSpansComponents) {
    EXPECT_TRUE(path_match("**/*.c", "main.c"));
    EXPECT_TRUE(path_match("**/*.c", "a/b/main.c"));
    EXPECT_TRUE(path_match("src/**", "src/a/b"));
    EXPECT_FALSE(path_match("src/**/x", "lib/a/x"));
}

TEST(PathMatch, ClassesAndEscapes) {
    EXPECT_TRUE(path_match("file[0-9]", "file7"));
    EXPECT_FALSE(path_match("file[!0-9]", "file7"));
    EXPECT_TRUE(path_match("a\\*b", "a*b"));
    EXPECT_FALSE(path_match("a\\*b", "axb"));
    EXPECT_TRUE(path_match("?.txt", "a.txt"));
    EXPECT_FALSE(factory::validate_pattern("file[0-9").has_value());
}

TEST(IgnoreRules, LastMatchingRuleWinsAndParentsCount) {
    auto rules = IgnoreRules::parse("# comment\n*.log\nbuild/\n!important.log\n", ".factoryignore");
    EXPECT_TRUE(rules.ignored("debug.log"));
    EXPECT_FALSE(rules.ignored("important.log"));
    EXPECT_TRUE(rules.ignored("build"));
    EXPECT_TRUE(rules.ignored("build/out/a.o"));
    EXPECT_FALSE(rules.ignored("src/main.c"));
}

TEST(IgnoreRules, MalformedPatternNamesTheLine) {
    try {
        IgnoreRules::parse("ok\n[abc\n", "ctx/.factoryignore");
        FAIL() << "expected an error";
    } catch (const factory::Error& e) {
        EXPECT_EQ(std::string(e.what()), "ctx/.factoryignore:2: unclosed '[' in pattern '[abc'");
        EXPECT_EQ(e.code(), factory::ExitCode::usage);
    }
}
