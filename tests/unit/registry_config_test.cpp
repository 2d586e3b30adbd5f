// registries.toml: per-host ca and insecure, and its errors at FILE:LINE:COL.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "factory/registry/config.hpp"
#include "factory/util/error.hpp"

using namespace factory::registry;

namespace {

std::string error_of(std::string_view text, const fs::path& file = "/etc/r.toml") {
    try {
        parse_registries_config(text, file);
    } catch (const factory::Error& e) {
        EXPECT_EQ(e.code(), factory::ExitCode::usage);
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST(RegistryConfig, HostsGetTheirOwnSettings) {
    auto dir = fs::temp_directory_path() / "factory-registry-config-test";
    fs::create_directories(dir / "certs");
    std::ofstream(dir / "certs" / "ca.pem") << "pem";
    auto c = parse_registries_config("[[registry]]\nlocation = \"r.example:5000\"\nca = "
                                     "\"certs/ca.pem\"\n\n[[registry]]\nlocation = \"docker.io\"\n"
                                     "insecure = true\n",
                                     dir / "registries.toml");
    ASSERT_EQ(c.hosts.size(), 2u);
    ASSERT_NE(c.find("r.example:5000"), nullptr);
    EXPECT_EQ(c.find("r.example:5000")->ca, dir / "certs" / "ca.pem");
    EXPECT_FALSE(c.find("r.example:5000")->insecure);
    EXPECT_EQ(c.find("r.example"), nullptr); // another port is another registry
    EXPECT_EQ(c.find("r.example:5001"), nullptr);
    ASSERT_NE(c.find("registry-1.docker.io"), nullptr);
    EXPECT_TRUE(c.find("registry-1.docker.io")->insecure);
    fs::remove_all(dir);
}

TEST(RegistryConfig, ErrorsSayFileLineAndColumn) {
    EXPECT_EQ(error_of("[[registry]]\nlocation = \"h\"\ninsecure = 1\n"),
              "/etc/r.toml:3:12: [[registry]] insecure: expected true or false");
    EXPECT_EQ(error_of("[[registry]]\nlocation = \"h\"\nmirrors = []\n"),
              "/etc/r.toml:3:1: [[registry]]: unknown key 'mirrors' (known: location, insecure, "
              "ca)");
    EXPECT_EQ(error_of("[[registry]]\ninsecure = true\n"),
              "/etc/r.toml:1:1: [[registry]]: location is required");
    EXPECT_EQ(error_of("[[registry]]\nlocation = \"h\"\n[[registry]]\nlocation = \"h\"\n"),
              "/etc/r.toml:3:1: [[registry]] h is listed twice");
    EXPECT_EQ(error_of("insecure = [\"h\"]\n"),
              "/etc/r.toml:1:1: unknown key 'insecure' (expected [[registry]] tables)");
    EXPECT_EQ(error_of("[[registry]]\nlocation = \"http://h/v2\"\n"),
              "/etc/r.toml:2:12: [[registry]] location 'http://h/v2': expected HOST[:PORT] (no "
              "scheme, no path)");
    EXPECT_EQ(error_of("[[registry]]\nlocation = \"h\"\nca = \"/nonexistent/ca.pem\"\n"),
              "/etc/r.toml:3:6: [[registry]] ca: no such file: /nonexistent/ca.pem");
    EXPECT_TRUE(error_of("[[registry]\n").starts_with("/etc/r.toml:1:"))
        << error_of("[[registry]\n");
}

TEST(RegistryConfig, FilesInOrder) {
    ::setenv("XDG_CONFIG_HOME", "/x", 1);
    ::unsetenv("FACTORY_REGISTRIES_CONF");
    auto files = registries_config_files();
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(files[0], "/x/factory/registries.toml");
    EXPECT_EQ(files[1], "/etc/factory/registries.toml");
    ::setenv("FACTORY_REGISTRIES_CONF", "/only.toml", 1);
    EXPECT_EQ(registries_config_files(), std::vector<fs::path>{"/only.toml"});
    ::unsetenv("FACTORY_REGISTRIES_CONF");
}
