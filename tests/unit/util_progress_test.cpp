#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "factory/util/progress.hpp"
#include "test_dir.hpp"

namespace {

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace

// cli.md: with --progress json every line of stderr is one JSON object, warnings included.
TEST(Progress, WarningIsAJsonEventWhileAJsonProgressExists) {
    factory::testing::TestDir dir;
    auto file = dir / "progress.json";
    std::FILE* out = std::fopen(file.c_str(), "w");
    ASSERT_NE(out, nullptr);
    {
        factory::Progress progress(factory::ProgressMode::json, out);
        factory::Progress plain(factory::ProgressMode::plain, out); // does not take over
        factory::warn("TLS verification is off for \"r.io\"");
    }
    std::fclose(out);
    auto text = read_all(file);
    EXPECT_TRUE(text.starts_with(
        R"({"event":"warning","id":"","message":"TLS verification is off for \"r.io\"","seconds":)"))
        << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
}

TEST(Progress, WarningGoesToStderrWithoutAJsonProgress) {
    factory::testing::TestDir dir;
    auto file = dir / "progress.txt";
    std::FILE* out = std::fopen(file.c_str(), "w");
    ASSERT_NE(out, nullptr);
    { factory::Progress json(factory::ProgressMode::json, out); } // gone: warnings are text again
    factory::Progress plain(factory::ProgressMode::plain, out);
    testing::internal::CaptureStderr();
    factory::warn("--cache-from docker://r.io/c:t: down; building without it");
    auto err = testing::internal::GetCapturedStderr();
    std::fclose(out);
    EXPECT_EQ(err, "factory: warning: --cache-from docker://r.io/c:t: down; building without it\n");
    EXPECT_EQ(read_all(file), "");
}
