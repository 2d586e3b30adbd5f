// WWW-Authenticate as registries send it, and the malformed headers a hostile one could.
#include <gtest/gtest.h>

#include "factory/registry/www_authenticate.hpp"

using factory::registry::parse_www_authenticate;

TEST(WwwAuthenticate, ParsesABearerChallenge) {
    auto r = parse_www_authenticate(
        R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull")");
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].scheme, "bearer");
    EXPECT_EQ((*r)[0].param("realm"), "https://auth.docker.io/token");
    EXPECT_EQ((*r)[0].param("service"), "registry.docker.io");
    EXPECT_EQ((*r)[0].param("scope"), "repository:library/debian:pull");
}

TEST(WwwAuthenticate, ParsesSeveralChallengesTokensEscapesAndSpaces) {
    auto r = parse_www_authenticate(
        R"(Basic realm="Registry \"x\"", Bearer  realm = "https://h/t" , scope=a:b:pull,error=insufficient_scope, Negotiate abc==)");
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->size(), 3u);
    EXPECT_EQ((*r)[0].scheme, "basic");
    EXPECT_EQ((*r)[0].param("realm"), "Registry \"x\"");
    EXPECT_EQ((*r)[1].param("realm"), "https://h/t");
    EXPECT_EQ((*r)[1].param("scope"), "a:b:pull");
    EXPECT_EQ((*r)[1].param("error"), "insufficient_scope");
    EXPECT_EQ((*r)[2].scheme, "negotiate");
    EXPECT_EQ((*r)[2].param("token68"), "abc==");
}

TEST(WwwAuthenticate, SchemeAloneAndCaseInsensitiveNames) {
    auto r = parse_www_authenticate("BASIC REALM=x");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ((*r)[0].scheme, "basic");
    EXPECT_EQ((*r)[0].param("realm"), "x");
    auto alone = parse_www_authenticate("Bearer");
    ASSERT_TRUE(alone);
    EXPECT_TRUE((*alone)[0].params.empty());
}

TEST(WwwAuthenticate, RejectsMalformedHeaders) {
    for (const char* bad : {"", "   ", "Bearer realm=\"unterminated", "Bearer realm=\"a\" junk",
                            "=x", "Bearer \"quoted\"", "Bea\x01rer realm=a"}) {
        auto r = parse_www_authenticate(bad);
        EXPECT_FALSE(r) << "accepted: " << bad;
        if (!r) {
            EXPECT_TRUE(r.error().starts_with("WWW-Authenticate: ")) << r.error();
        }
    }
    EXPECT_FALSE(parse_www_authenticate("Bearer realm=\"" + std::string(20000, 'a') + "\""));
}
