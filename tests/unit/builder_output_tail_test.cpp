// What a failed RUN or deps step shows of its output (builder/output_tail.hpp): the tail, and
// the first error lines that scrolled out of it, in order, with the gaps marked.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "factory/builder/output_tail.hpp"

using factory::builder::looks_like_error;
using factory::builder::OutputTail;

namespace {

std::vector<std::string> shown(OutputTail& t, const std::vector<std::string>& output) {
    for (const auto& l : output)
        t.add(l);
    return t.lines();
}

} // namespace

TEST(OutputTail, ShortOutputIsShownWhole) {
    OutputTail t(3, 2);
    EXPECT_TRUE(t.empty());
    EXPECT_EQ(shown(t, {"a", "error: b"}), (std::vector<std::string>{"a", "error: b"}));
    EXPECT_FALSE(t.kept_errors());
}

TEST(OutputTail, LongOutputWithoutErrorsIsItsTailAfterAGap) {
    OutputTail t(2, 5);
    EXPECT_EQ(shown(t, {"1", "2", "3", "4", "5"}),
              (std::vector<std::string>{"… (3 lines left out)", "4", "5"}));
    EXPECT_FALSE(t.kept_errors());
}

// npm ci with a lock file out of sync: the cause, then npm's usage text, every line "npm ERR!".
TEST(OutputTail, NpmCiKeepsTheCauseAboveItsUsageText) {
    std::vector<std::string> out = {
        "npm ERR! code EUSAGE",
        "npm ERR! ",
        "npm ERR! `npm ci` can only install packages when your package.json and "
        "package-lock.json or npm-shrinkwrap.json are in sync.",
        "npm ERR! ",
        "npm ERR! Invalid: lock file's ms@2.1.3 does not satisfy ms@2.1.2",
        "npm ERR! ",
        "npm ERR! Clean install a project",
    };
    for (int i = 0; i < 40; ++i)
        out.push_back("npm ERR! [--option-" + std::to_string(i) + "]");
    out.push_back("npm ERR! Run \"npm help ci\" for more info");
    OutputTail t(30, 3);
    auto lines = shown(t, out);
    ASSERT_EQ(lines.size(), 3u + 3u + 30u) << lines.front();
    EXPECT_EQ(lines[0], "npm ERR! code EUSAGE");
    EXPECT_EQ(lines[1], "… (1 line left out)"); // the bare "npm ERR! "
    EXPECT_EQ(lines[2], out[2]);
    EXPECT_EQ(lines[3], "… (1 line left out)");
    EXPECT_EQ(lines[4], "npm ERR! Invalid: lock file's ms@2.1.3 does not satisfy ms@2.1.2");
    // The first 3 error lines are kept: the lines between them and the tail are not.
    EXPECT_EQ(lines[5], "… (" + std::to_string(out.size() - 30 - 5) + " lines left out)");
    EXPECT_EQ(lines.back(), "npm ERR! Run \"npm help ci\" for more info");
    EXPECT_TRUE(t.kept_errors());
}

TEST(OutputTail, IsBoundedWhateverTheCommandPrints) {
    OutputTail t(30, 10);
    for (int i = 0; i < 100000; ++i)
        t.add("error: line " + std::to_string(i) + std::string(5000, 'x'));
    auto lines = t.lines();
    EXPECT_EQ(lines.size(), 10u + 1u + 30u);
    EXPECT_EQ(lines[10], "… (" + std::to_string(100000 - 40) + " lines left out)");
    for (const auto& l : lines)
        EXPECT_LE(l.size(), OutputTail::max_line + 3); // "…" is 3 bytes
    EXPECT_TRUE(lines[0].starts_with("error: line 0xxx"));
    EXPECT_TRUE(lines.back().starts_with("error: line 99999xxx"));
}

TEST(OutputTail, WhatLooksLikeAnError) {
    EXPECT_TRUE(looks_like_error("npm ERR! code ERESOLVE"));
    EXPECT_FALSE(looks_like_error("npm ERR! "));
    EXPECT_TRUE(looks_like_error("E: Unable to locate package nosuch"));
    EXPECT_TRUE(looks_like_error("main.c:3:1: error: expected ';'"));
    EXPECT_TRUE(looks_like_error("Error: Cannot find module 'x'"));
    EXPECT_TRUE(looks_like_error("fatal: not a git repository"));
    EXPECT_FALSE(looks_like_error("added 12 packages in 2s"));
    EXPECT_FALSE(looks_like_error("W: an apt warning"));
    EXPECT_FALSE(looks_like_error("  E: indented is not apt's"));
}
