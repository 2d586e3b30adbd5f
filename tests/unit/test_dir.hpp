#pragma once
// A fresh directory per test under $TMPDIR, removed when the test passes and kept (its path
// printed) when it fails.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
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

// Root with CAP_SYS_ADMIN (mounts, device nodes, trusted.* xattrs): uid 0 inside a container
// (a `factory shell --root` of recipes/dev.toml) has neither, and such tests skip there too.
inline bool privileged() {
    if (::geteuid() != 0) return false;
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("CapEff:", 0) == 0) {
            auto caps = std::stoull(line.substr(7), nullptr, 16);
            return (caps >> 21) & 1; // CAP_SYS_ADMIN
        }
    return false;
}

} // namespace factory::testing
