#pragma once
// A fresh directory per test under $TMPDIR, removed when the test passes and kept (its path
// printed) when it fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace factory::testing {

class TestDir {
  public:
    TestDir() {
        auto info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = std::string(info->test_suite_name()) + "." + info->name();
        for (auto& c : name)
            if (c == '/') c = '_';
        path_ = std::filesystem::temp_directory_path() / ("factory-test-" + name);
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~TestDir() {
        if (::testing::Test::HasFailure())
            std::fprintf(stderr, "kept test dir %s\n", path_.c_str());
        else
            std::filesystem::remove_all(path_);
    }
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

  private:
    std::filesystem::path path_;
};

} // namespace factory::testing
