// Docker's reference normalization, as `docker save`/`docker load` apply it.
#include <gtest/gtest.h>

#include "factory/oci/reference.hpp"

using factory::oci::parse_docker_reference;

TEST(DockerReference, NormalizesLikeDocker) {
    struct Case {
        const char* in;
        const char* full;
        const char* familiar;
    } cases[] = {
        {"hello", "docker.io/library/hello:latest", "hello:latest"},
        {"hello:1.0", "docker.io/library/hello:1.0", "hello:1.0"},
        {"user/app:v2", "docker.io/user/app:v2", "user/app:v2"},
        {"docker.io/library/hello:x", "docker.io/library/hello:x", "hello:x"},
        {"index.docker.io/user/app", "docker.io/user/app:latest", "user/app:latest"},
        {"localhost/app:1", "localhost/app:1", "localhost/app:1"},
        {"localhost:5000/ns/app:1", "localhost:5000/ns/app:1", "localhost:5000/ns/app:1"},
        {"ghcr.io/org/repo/img:tag_1.2-3", "ghcr.io/org/repo/img:tag_1.2-3",
         "ghcr.io/org/repo/img:tag_1.2-3"},
        {"a__b-c---d/e.f_g", "docker.io/a__b-c---d/e.f_g:latest", "a__b-c---d/e.f_g:latest"},
        {"Registry/app", "Registry/app:latest", "Registry/app:latest"}, // upper case: a domain
    };
    for (const auto& c : cases) {
        auto r = parse_docker_reference(c.in);
        ASSERT_TRUE(r) << c.in << ": " << r.error();
        EXPECT_EQ(r->full(), c.full) << c.in;
        EXPECT_EQ(r->familiar(), c.familiar) << c.in;
    }
    EXPECT_EQ(parse_docker_reference("hello")->familiar_name(), "hello");
    EXPECT_EQ(parse_docker_reference("user/app")->familiar_name(), "user/app");
}

TEST(DockerReference, RejectsWhatDockerRejects) {
    auto error = [](const char* in) {
        auto r = parse_docker_reference(in);
        return r ? std::string("(accepted)") : r.error();
    };
    EXPECT_EQ(error("Hello"),
              "invalid image reference \"Hello\": repository names must be lower case");
    EXPECT_EQ(
        error("hello@sha256:abc"),
        "invalid image reference \"hello@sha256:abc\": a digest reference can't name an image "
        "in an archive");
    EXPECT_EQ(error("hello:"), "invalid image reference \"hello:\": invalid tag \"\"");
    EXPECT_EQ(error("hello:-x"), "invalid image reference \"hello:-x\": invalid tag \"-x\"");
    EXPECT_EQ(error(""), "invalid image reference \"\": empty name");
    EXPECT_EQ(error("a//b"), "invalid image reference \"a//b\": invalid path component \"\"");
    EXPECT_EQ(error("-a"), "invalid image reference \"-a\": invalid path component \"-a\"");
    EXPECT_EQ(error(std::string(64, 'a').c_str()),
              "invalid image reference \"" + std::string(64, 'a') +
                  "\": a 64-hex name would be taken for an image ID");
    EXPECT_NE(error("x/../y"), "(accepted)");
    EXPECT_NE(error("ex ample/app"), "(accepted)");
}
