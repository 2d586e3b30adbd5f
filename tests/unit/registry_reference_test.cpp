// Registry references as the docker:// transport spells them.
#include <gtest/gtest.h>

#include "factory/registry/reference.hpp"

using factory::registry::looks_like_reference;
using factory::registry::parse_reference;

TEST(RegistryReference, ParsesHostRepositoryTagAndDigest) {
    const std::string d = "sha256:" + std::string(64, 'a');
    struct Case {
        std::string in, host, repo, tag, digest, str;
    } cases[] = {
        {"127.0.0.1:5000/test/hello:v1", "127.0.0.1:5000", "test/hello", "v1", "",
         "127.0.0.1:5000/test/hello:v1"},
        {"docker://localhost/app", "localhost", "app", "latest", "", "localhost/app:latest"},
        {"ghcr.io/org/img@" + d, "ghcr.io", "org/img", "", d, "ghcr.io/org/img@" + d},
        {"r.example.com/a/b:1.2@" + d, "r.example.com", "a/b", "1.2", d,
         "r.example.com/a/b:1.2@" + d},
        {"debian:bookworm", "docker.io", "library/debian", "bookworm", "",
         "docker.io/library/debian:bookworm"},
        {"[::1]:5000/x", "[::1]:5000", "x", "latest", "", "[::1]:5000/x:latest"},
    };
    for (const auto& c : cases) {
        auto r = parse_reference(c.in);
        ASSERT_TRUE(r) << c.in << ": " << r.error();
        EXPECT_EQ(r->host, c.host) << c.in;
        EXPECT_EQ(r->repository, c.repo) << c.in;
        EXPECT_EQ(r->tag, c.tag) << c.in;
        EXPECT_EQ(r->digest, c.digest) << c.in;
        EXPECT_EQ(r->str(), c.str) << c.in;
    }
    EXPECT_EQ(parse_reference("docker.io/library/x")->api_host(), "registry-1.docker.io");
    EXPECT_EQ(parse_reference("h:1/x@" + d)->reference(), d);
}

TEST(RegistryReference, RejectsWithTheWrongPartNamed) {
    struct Case {
        const char* in;
        const char* says;
    } cases[] = {
        {"h.io/Upper/x", "invalid repository component 'Upper'"},
        {"h.io/a//b", "invalid repository component ''"},
        {"h.io/x:-bad", "invalid tag '-bad'"},
        {"h.io/x@sha256:abc", "invalid digest"},
        {"h.io/x@md5:", "invalid digest"},
        {"bad_host.io:99999/x", "invalid registry host"},
        {"h.io/", "no repository"},
        {"h.io/../x", "invalid repository component '..'"},
    };
    for (const auto& c : cases) {
        auto r = parse_reference(c.in);
        ASSERT_FALSE(r) << c.in;
        EXPECT_NE(r.error().find(c.says), std::string::npos) << c.in << ": " << r.error();
    }
}

TEST(RegistryReference, TellsReferencesFromStoreNames) {
    EXPECT_TRUE(looks_like_reference("docker://x"));
    EXPECT_TRUE(looks_like_reference("localhost/x"));
    EXPECT_TRUE(looks_like_reference("r.io/team/base:1"));
    EXPECT_FALSE(looks_like_reference("hello:latest"));
    EXPECT_FALSE(looks_like_reference("team/base"));
    EXPECT_FALSE(looks_like_reference("oci:dir"));
}
