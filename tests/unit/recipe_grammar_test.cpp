// The recipe module's small pure pieces: value grammars, ${ARG} expansion, suggestions and the
// nesting pre-scan.
#include "factory/recipe/expand.hpp"
#include "factory/recipe/grammar.hpp"
#include "factory/recipe/nesting.hpp"
#include "factory/recipe/suggest.hpp"
#include "factory/util/error.hpp"

#include <gtest/gtest.h>
#include <string>

namespace factory::recipe::detail {
namespace {

TEST(RecipeGrammar, ImageNames) {
    for (const char* ok :
         {"hello", "team/hello", "team/a.b_c__d-e--f", "localhost/x", "localhost:5000/x",
          "registry.example.com/team/app", "Registry.Example.com:443/a/b", "[::1]:5000/x", "0"})
        EXPECT_TRUE(is_image_name(ok)) << ok;
    for (const char* bad :
         {"", "Hello", "a.b_c/g", "hello/", "/hello", "a//b", "a..b", "a___b", "-a", "a-", "a_",
          "a:tag", "a@sha256:00", "host:notaport/x", "exa_mple.com/x", "localhost:99999/x"})
        EXPECT_FALSE(is_image_name(bad)) << bad;
    EXPECT_TRUE(is_image_name(std::string(255, 'a')));
    EXPECT_FALSE(is_image_name(std::string(256, 'a')));
}

TEST(RecipeGrammar, RefNames) {
    EXPECT_TRUE(is_ref_name("1.0"));
    EXPECT_TRUE(is_ref_name("example.com/app:v1+build@x--y"));
    EXPECT_FALSE(is_ref_name(""));
    EXPECT_FALSE(is_ref_name("a..b"));
    EXPECT_FALSE(is_ref_name("a b"));
    EXPECT_FALSE(is_ref_name("a/"));
}

TEST(RecipeGrammar, Names) {
    EXPECT_TRUE(is_arg_name("_A1"));
    EXPECT_FALSE(is_arg_name("1A"));
    EXPECT_FALSE(is_arg_name("A-B"));
    EXPECT_TRUE(is_stage_name("build-2_x"));
    EXPECT_FALSE(is_stage_name("Build"));
    EXPECT_FALSE(is_stage_name("a.b"));
    EXPECT_FALSE(is_stage_name("-a"));
    EXPECT_FALSE(is_stage_name(std::string(65, 'a')));
    EXPECT_TRUE(is_context_name("My.Tools-2"));
    EXPECT_FALSE(is_context_name(".hidden"));
    EXPECT_TRUE(is_platform_variant("v7"));
    EXPECT_FALSE(is_platform_variant("V7"));
    EXPECT_FALSE(is_platform_variant(""));
}

TEST(RecipeGrammar, Ports) {
    EXPECT_EQ(normalize_port("80"), "80/tcp");
    EXPECT_EQ(normalize_port("53/udp"), "53/udp");
    EXPECT_EQ(normalize_port("9/sctp"), "9/sctp");
    EXPECT_EQ(normalize_port("65535"), "65535/tcp");
    for (const char* bad : {"0", "65536", "080", "", "/tcp", "80/", "80/TCP", "80-90", "-1",
                            "99999999999999999999999", "8080/tcp/x"})
        EXPECT_FALSE(normalize_port(bad)) << bad;
}

TEST(RecipeGrammar, Users) {
    for (const char* ok : {"0", "1000:1000", "app", "app:staff", "app:0", "2147483647", "_a.b-c"})
        EXPECT_TRUE(is_user(ok)) << ok;
    for (const char* bad : {"", ":", "1000:", ":1000", "2147483648", "0:2147483648", "a:b:c", "a b",
                            "99999999999999999999"})
        EXPECT_FALSE(is_user(bad)) << bad;
}

TEST(RecipeGrammar, StopSignals) {
    for (const char* ok : {"SIGTERM", "SIGKILL", "SIGRTMIN", "SIGRTMIN+3", "SIGRTMAX-1", "9", "64"})
        EXPECT_TRUE(is_stop_signal(ok)) << ok;
    for (const char* bad :
         {"TERM", "SIGFOO", "0", "65", "09", "SIGRTMIN+31", "SIGRTMIN+0", "", "SIG"})
        EXPECT_FALSE(is_stop_signal(bad)) << bad;
}

TEST(RecipeGrammar, Architectures) {
    auto arch = [](const char* machine) {
        auto a = goarch_from_machine(machine);
        return a ? a->arch + (a->variant.empty() ? "" : "/" + a->variant) : "?";
    };
    EXPECT_EQ(arch("x86_64"), "amd64");
    EXPECT_EQ(arch("aarch64"), "arm64");
    EXPECT_EQ(arch("i686"), "386");
    EXPECT_EQ(arch("armv7l"), "arm/v7");
    EXPECT_EQ(arch("armv6l"), "arm/v6");
    EXPECT_EQ(arch("ppc64le"), "ppc64le");
    EXPECT_EQ(arch("s390x"), "s390x");
    EXPECT_EQ(arch("riscv64"), "riscv64");
    EXPECT_EQ(arch("loongarch64"), "loong64");
    EXPECT_EQ(arch("vax"), "?");
    EXPECT_TRUE(is_goarch("amd64"));
    EXPECT_FALSE(is_goarch("x86_64"));
}

TEST(RecipeGrammar, DotDot) {
    EXPECT_TRUE(has_dotdot(".."));
    EXPECT_TRUE(has_dotdot("a/../b"));
    EXPECT_TRUE(has_dotdot("/a/.."));
    EXPECT_FALSE(has_dotdot("a/..b/c"));
    EXPECT_FALSE(has_dotdot("..."));
    EXPECT_FALSE(has_dotdot("a/b"));
}

TEST(RecipeGrammar, MountIdsAndEnvNames) {
    for (const char* ok : {"npm", "a.b_c-1", "A", "0", "go.mod"})
        EXPECT_TRUE(is_mount_id(ok)) << ok;
    EXPECT_TRUE(is_mount_id(std::string(64, 'a')));
    EXPECT_FALSE(is_mount_id(std::string(65, 'a')));
    // buildah CVE-2024-9675: an id must never become a path outside the cache directory.
    for (const char* bad :
         {"", "..", "../x", "a/b", "/var/cache/apt", "a..b", ".a", "-a", "_a", "a b", "a\\b"})
        EXPECT_FALSE(is_mount_id(bad)) << bad;
    EXPECT_TRUE(is_env_name("SSH_AUTH_SOCK"));
    EXPECT_TRUE(is_env_name("_x1"));
    EXPECT_FALSE(is_env_name("1X"));
    EXPECT_FALSE(is_env_name("A-B"));
    EXPECT_FALSE(is_env_name("A=B"));
    EXPECT_FALSE(is_env_name(""));
}

TEST(RecipeGrammar, Hostnames) {
    EXPECT_TRUE(is_hostname("dev"));
    EXPECT_TRUE(is_hostname("dev-1.example.com"));
    EXPECT_TRUE(is_hostname(std::string(63, 'a')));
    EXPECT_FALSE(is_hostname(std::string(64, 'a')));
    EXPECT_FALSE(is_hostname(""));
    EXPECT_FALSE(is_hostname("-dev"));
    EXPECT_FALSE(is_hostname("dev_box"));
    EXPECT_FALSE(is_hostname("a..b"));
    EXPECT_FALSE(is_hostname("a."));
}

TEST(RecipeGrammar, Debian) {
    EXPECT_TRUE(is_debian_suite("bookworm"));
    EXPECT_TRUE(is_debian_suite("bookworm-backports"));
    EXPECT_FALSE(is_debian_suite("Bookworm"));
    EXPECT_FALSE(is_debian_suite("bookworm/updates"));
    EXPECT_FALSE(is_debian_suite(""));
    EXPECT_FALSE(is_debian_suite("-bookworm"));
    for (const char* ok : {"git", "g++", "libstdc++6", "ca-certificates", "python3.11", "r8"})
        EXPECT_TRUE(is_debian_package(ok)) << ok;
    for (const char* bad : {"", "a", "Git", "-git", "+x", "git=1.0", "git:amd64", "a b", "a_b"})
        EXPECT_FALSE(is_debian_package(bad)) << bad;
    EXPECT_TRUE(is_debian_component("non-free-firmware"));
    EXPECT_FALSE(is_debian_component("Main"));
    EXPECT_FALSE(is_debian_component("updates/main"));
    EXPECT_TRUE(is_http_url("http://deb.debian.org/debian"));
    EXPECT_TRUE(is_http_url("https://[::1]:3142/debian/"));
    for (const char* bad : {"", "deb.debian.org/debian", "ftp://x/", "http://", "http:///x",
                            "http://a b/", "http://a/b,http://c/", "file:///srv/mirror"})
        EXPECT_FALSE(is_http_url(bad)) << bad;
    EXPECT_EQ(debian_arch_from_goarch("amd64", ""), "amd64");
    EXPECT_EQ(debian_arch_from_goarch("arm64", "v8"), "arm64");
    EXPECT_EQ(debian_arch_from_goarch("arm", "v7"), "armhf");
    EXPECT_EQ(debian_arch_from_goarch("arm", "v5"), "armel");
    EXPECT_EQ(debian_arch_from_goarch("386", ""), "i386");
    EXPECT_EQ(debian_arch_from_goarch("ppc64le", ""), "ppc64el");
    EXPECT_EQ(debian_arch_from_goarch("mips64le", ""), "mips64el");
    EXPECT_FALSE(debian_arch_from_goarch("arm", "")); // armel or armhf?
    EXPECT_FALSE(debian_arch_from_goarch("mips", ""));
}

TEST(RecipeGrammar, NormalizeAbsolute) {
    EXPECT_EQ(normalize_absolute("/var/cache/apt"), "/var/cache/apt");
    EXPECT_EQ(normalize_absolute("/var//cache/./apt/"), "/var/cache/apt");
    EXPECT_EQ(normalize_absolute("/"), "/");
    EXPECT_EQ(normalize_absolute("//./"), "/");
    EXPECT_EQ(normalize_absolute("/a/.b/..c"), "/a/.b/..c");
}

// --- expansion --------------------------------------------------------------------------------

std::string expand(std::string_view text, std::size_t max = 1 << 20) {
    return expand_args(text, {{"A", "1"}, {"LONG_NAME", "x${A}y"}}, max, "f:1:2: k: ");
}

std::string expand_error(std::string_view text, std::size_t max = 1 << 20) {
    try {
        expand(text, max);
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::usage);
        return e.what();
    }
    return "no error";
}

TEST(RecipeExpand, Substitutes) {
    EXPECT_EQ(expand("plain"), "plain");
    EXPECT_EQ(expand("${A}"), "1");
    EXPECT_EQ(expand("a${A}b${A}"), "a1b1");
    EXPECT_EQ(expand("${LONG_NAME}"), "x${A}y"); // not expanded again
    EXPECT_EQ(expand("$${A}"), "${A}");
    EXPECT_EQ(expand("$$${A}"), "$${A}");
    EXPECT_EQ(expand("$A $ $$ {A} $"), "$A $ $$ {A} $");
    EXPECT_EQ(expand("$${"), "${");
}

TEST(RecipeExpand, DeclaredOnlyLeavesTheRestToTheShell) {
    auto run = [](std::string_view text, std::size_t max = 1 << 20) {
        return expand_args(text, {{"A", "1"}}, max, "f:1:2: run: ", ArgRefs::declared_only);
    };
    EXPECT_EQ(run("${A} ${HOME} ${A:-x} ${} ${1} $${A} $A ${"),
              "1 ${HOME} ${A:-x} ${} ${1} ${A} $A ${");
    EXPECT_EQ(run("${${A}}"), "${1}");
    EXPECT_EQ(run("${AA}${A"), "${AA}${A");
    try {
        run("${A}${A}${A}", 2);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "f:1:2: run: expands to more than 2 bytes");
    }
}

TEST(RecipeExpand, Errors) {
    EXPECT_EQ(expand_error("${AA}"), "f:1:2: k: unknown arg ${AA}; did you mean ${A}?");
    EXPECT_EQ(expand_error("${LONG_NAEM}"),
              "f:1:2: k: unknown arg ${LONG_NAEM}; did you mean ${LONG_NAME}?");
    EXPECT_EQ(expand_error("${NOPE}"), "f:1:2: k: unknown arg ${NOPE} (declared: A, LONG_NAME)");
    EXPECT_EQ(expand_error("x${A"), "f:1:2: k: unterminated ${ (write $${ for a literal ${)");
    EXPECT_EQ(expand_error("${}"),
              "f:1:2: k: invalid arg reference \"${}\": expected ${NAME} with NAME made of "
              "letters, digits and _ (write $${ for a literal ${)");
    EXPECT_EQ(expand_error("${A}${A}${A}", 2), "f:1:2: k: expands to more than 2 bytes");
}

// --- suggestions ------------------------------------------------------------------------------

TEST(RecipeSuggest, Closest) {
    std::vector<std::string> keys = {"name", "tags", "epoch", "compression", "platform"};
    EXPECT_EQ(closest("tagz", keys), "tags");
    EXPECT_EQ(closest("TAGS", keys), "tags");
    EXPECT_EQ(closest("compresion", keys), "compression");
    EXPECT_EQ(closest("platfrom", keys), "platform");
    EXPECT_EQ(closest("x", keys), "");
    EXPECT_EQ(closest("healthcheck", keys), "");
    EXPECT_EQ(closest("uid", {"gid", "uid"}), "uid");
    EXPECT_EQ(closest(std::string(100, 'a'), {std::string(100, 'a')}), "");
}

TEST(RecipeSuggest, ListsAndQuotes) {
    EXPECT_EQ(join_list({}), "none");
    EXPECT_EQ(join_list({"a", "b"}), "a, b");
    EXPECT_EQ(join_list({"a", "b", "c"}, 2), "a, b, … (1 more)");
    EXPECT_EQ(quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\x0a\\x01\"");
    EXPECT_EQ(quote_key("it's"), "'it\\'s'");
    EXPECT_EQ(quote(std::string(100, 'x')), "\"" + std::string(80, 'x') + "…\"");
}

// --- nesting pre-scan -------------------------------------------------------------------------

std::string excess(std::string_view text, int limit = 4) {
    auto at = find_excess_nesting(text, limit);
    return at ? std::to_string(at->line) + ":" + std::to_string(at->column) : "ok";
}

TEST(RecipeNesting, CountsKeysHeadersAndBrackets) {
    EXPECT_EQ(excess("a.b.c.d = 1"), "ok");
    EXPECT_EQ(excess("a.b.c.d.e = 1"), "1:8");
    EXPECT_EQ(excess("[a.b]\nc = 1\n[x]"), "ok");
    EXPECT_EQ(excess("[a.b]\nc.d.e = 1"), "2:2");
    EXPECT_EQ(excess("[a.b.c]"), "ok");
    EXPECT_EQ(excess("[a.b.c.d]"), "1:9");
    EXPECT_EQ(excess("x = [[[[1]]]]"), "ok");
    EXPECT_EQ(excess("x = [[[[[1]]]]]"), "1:9");
    EXPECT_EQ(excess("x = [[[[1]]]]\ny = [[[[1]]]]"), "ok"); // closed brackets pop
    EXPECT_EQ(excess("x = {a.b.c = {d.e = 1}}"), "1:16");
    EXPECT_EQ(excess("x = [\n [\n  [\n   [\n    [1]]]]]"), "5:5"); // arrays span lines
}

TEST(RecipeNesting, SkipsStringsAndComments) {
    EXPECT_EQ(excess("x = \"[[[[[.....\""), "ok");
    EXPECT_EQ(excess("x = '[[[[[.....'"), "ok");
    EXPECT_EQ(excess("x = \"\"\"\n[[[[[\n\\\"\"\" [[[[[ \n\"\"\""), "ok");
    EXPECT_EQ(excess("x = '''\n[[[[[\n''''' \ny = 1"), "ok");
    EXPECT_EQ(excess("x = 1 # [[[[[[.....\n"), "ok");
    EXPECT_EQ(excess("\"a.b.c.d.e\" = 1"), "ok");
    EXPECT_EQ(excess("x = \"\\\"[[[[[\""), "ok");
    // A single-line string ends at the line's end at the latest.
    EXPECT_EQ(excess("x = \"abc\ny = [[[[[[1]]]]]]"), "2:9");
    EXPECT_EQ(excess("x = 1.5\ny = 2.5"), "ok");
}

} // namespace
} // namespace factory::recipe::detail
