// util/image_names.hpp: the grammar pieces recipes, docker-archive names and registry
// references share.
#include <gtest/gtest.h>

#include <string>

#include "factory/util/image_names.hpp"

using namespace factory;

TEST(ImageNames, Tags) {
    EXPECT_TRUE(is_image_tag("latest"));
    EXPECT_TRUE(is_image_tag("_v1.0-rc.1"));
    EXPECT_TRUE(is_image_tag(std::string(128, 'a')));
    EXPECT_FALSE(is_image_tag(std::string(129, 'a')));
    EXPECT_FALSE(is_image_tag(""));
    EXPECT_FALSE(is_image_tag(".x"));
    EXPECT_FALSE(is_image_tag("-x"));
    EXPECT_FALSE(is_image_tag("a/b"));
    EXPECT_FALSE(is_image_tag("a:b"));
}

TEST(ImageNames, PathComponents) {
    for (const char* ok : {"a", "hello", "a.b", "a_b", "a__b", "a-b", "a---b", "0x"})
        EXPECT_TRUE(is_path_component(ok)) << ok;
    for (const char* bad : {"", "A", "a..b", "a___b", "-a", "a-", "a_", ".a", "a/b", "a:b"})
        EXPECT_FALSE(is_path_component(bad)) << bad;
}

TEST(ImageNames, RegistryHosts) {
    for (const char* ok : {"localhost", "localhost:5000", "ghcr.io", "a-b.example.com:443",
                           "127.0.0.1:5000", "[::1]", "[::1]:5000", "[::ffff:127.0.0.1]:1"})
        EXPECT_TRUE(is_registry_host(ok)) << ok;
    for (const char* bad : {"", "exa_mple.com", "-a.com", "a-.com", "a..com", "host:", "host:x",
                            "localhost:99999", "localhost:123456", "[]", "[::1", "[g::1]"})
        EXPECT_FALSE(is_registry_host(bad)) << bad;
}

TEST(ImageNames, WhichFirstComponentNamesARegistry) {
    for (const char* yes : {"localhost", "ghcr.io", "host:5000", "[::1]"})
        EXPECT_TRUE(names_a_registry(yes)) << yes;
    for (const char* no : {"library", "ns", "local-host"})
        EXPECT_FALSE(names_a_registry(no)) << no;
}
