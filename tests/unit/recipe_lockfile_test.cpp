// recipe::lockfile_text / parse_lockfile: the lock file's bytes are a function of its pins
// (sorted, stable), they read back to the same pins, and bad input is a located error.
#include "factory/recipe/lockfile.hpp"
#include "factory/util/error.hpp"

#include <gtest/gtest.h>
#include <string>

namespace factory::recipe {
namespace {

Pin pin(std::string stage, int step, std::string kind, std::map<std::string, std::string> fields,
        std::map<std::string, std::string> packages = {}) {
    Pin p;
    p.stage = std::move(stage);
    p.step = step;
    p.kind = std::move(kind);
    p.fields = std::move(fields);
    p.packages = std::move(packages);
    return p;
}

Lockfile sample() {
    Lockfile lock;
    // Put out of order on purpose: the file is sorted whatever the order of put().
    lock.put(pin("main", 10, "download",
                 {{"url", "http://127.0.0.1:8080/a.tar.gz"}, {"sha256", std::string(64, 'a')}}));
    lock.put(pin("main", 2, "git",
                 {{"url", "git://127.0.0.1/app.git"},
                  {"ref", "main"},
                  {"commit", std::string(40, '1')},
                  {"name", "refs/heads/main"}}));
    lock.put(
        pin("builder", 0, "debian",
            {{"suite", "bookworm"},
             {"release-date", "2024-11-09T10:12:04Z"},
             {"mirror", "http://deb.debian.org/debian"}},
            {{"libc6", "2.36-9+deb12u4"}, {"g++", "4:12.2.0-3"}, {"libgcc-s1:i386", "12.2.0-14"}}));
    lock.put(pin(
        "main", 0, "registry",
        {{"reference", "127.0.0.1:5000/base:1"}, {"digest", "sha256:" + std::string(64, 'b')}}));
    return lock;
}

const char* const sample_text =
    R"(# Pins of app.toml for `factory build --locked` (docs/lockfile.md).
# Written by `factory lock`; move one with `factory lock --update NAME`.

[builder.base]
kind = "debian"
mirror = "http://deb.debian.org/debian"
release-date = "2024-11-09T10:12:04Z"
suite = "bookworm"

[builder.base.packages]
"g++" = "4:12.2.0-3"
libc6 = "2.36-9+deb12u4"
"libgcc-s1:i386" = "12.2.0-14"

[main.base]
kind = "registry"
digest = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
reference = "127.0.0.1:5000/base:1"

[main.2]
kind = "git"
commit = "1111111111111111111111111111111111111111"
name = "refs/heads/main"
ref = "main"
url = "git://127.0.0.1/app.git"

[main.10]
kind = "download"
sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
url = "http://127.0.0.1:8080/a.tar.gz"
)";

std::string parse_error(const std::string& text) {
    try {
        parse_lockfile(text, "app.toml.lock");
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::usage) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no error for:\n" << text;
    return "";
}

TEST(RecipeLockfile, TextIsSortedAndExact) {
    EXPECT_EQ(lockfile_text(sample(), "app.toml"), sample_text);
}

TEST(RecipeLockfile, RoundTripIsByteIdentical) {
    auto lock = parse_lockfile(sample_text, "app.toml.lock");
    ASSERT_EQ(lock.pins.size(), 4u);
    EXPECT_EQ(lock.pins[0].id(), "builder.base");
    EXPECT_EQ(lock.pins[3].id(), "main.10");
    EXPECT_EQ(lock.find("main.2")->field("commit"), std::string(40, '1'));
    EXPECT_EQ(lock.find("builder.base")->packages.at("libgcc-s1:i386"), "12.2.0-14");
    EXPECT_EQ(lock.find("builder.base")->field("release-date"), "2024-11-09T10:12:04Z");
    EXPECT_EQ(lockfile_text(lock, "app.toml"), sample_text);
}

TEST(RecipeLockfile, PutReplacesThePinOfTheSameId) {
    auto lock = sample();
    lock.put(pin("main", 2, "git", {{"commit", std::string(40, '2')}}));
    EXPECT_EQ(lock.pins.size(), 4u);
    EXPECT_EQ(lock.find("main.2")->field("commit"), std::string(40, '2'));
}

TEST(RecipeLockfile, ValuesAreEscaped) {
    Lockfile lock;
    lock.put(pin("main", 1, "download", {{"url", "http://h/a\"b\\c\n"}}));
    auto text = lockfile_text(lock, "x.toml");
    EXPECT_NE(text.find(R"(url = "http://h/a\"b\\c\u000a")"), std::string::npos) << text;
    EXPECT_EQ(parse_lockfile(text, "x").find("main.1")->field("url"), "http://h/a\"b\\c\n");
}

TEST(RecipeLockfile, InvalidTomlIsLocated) {
    EXPECT_EQ(parse_error("[main.2]\nkind = \"git\"\ncommit = \n"),
              "app.toml.lock:3:10: Error while parsing key-value pair: expected value, saw '\\n'");
}

TEST(RecipeLockfile, BadTablesAndFieldsAreLocated) {
    EXPECT_EQ(parse_error("[main.two]\nkind = \"git\"\n"),
              "app.toml.lock:1:7: main.two: expected STAGE.base or STAGE.N (the step's position)");
    EXPECT_EQ(
        parse_error("[main.2]\nkind = \"svn\"\n"),
        "app.toml.lock:2:8: main.2.kind: unknown kind 'svn' (debian, download, git, registry)");
    EXPECT_EQ(parse_error("[main.2]\nurl = \"x\"\n"), "app.toml.lock:1:1: main.2: missing kind");
    EXPECT_EQ(parse_error("[main.2]\nkind = \"git\"\ncommit = 12\n"),
              "app.toml.lock:3:10: main.2.commit: expected a string, got an integer");
    EXPECT_EQ(parse_error("[main.2]\nkind = \"git\"\n[main.2.packages]\na = \"1\"\n"),
              "app.toml.lock:3:9: main.2: only a debian pin has packages");
    EXPECT_EQ(parse_error("[Main.2]\nkind = \"git\"\n"),
              "app.toml.lock:1:2: invalid stage name Main");
}

// A hand-edited pin is refused where it is read, with its position, not by the build that
// would use it.
TEST(RecipeLockfile, ResolvedFieldsAreChecked) {
    std::string git = "[main.1]\nkind = \"git\"\nref = \"main\"\nurl = \"git://h/a.git\"\n";
    EXPECT_EQ(parse_error(git + "commit = \"nothex\"\n"),
              "app.toml.lock:5:10: main.1.commit: 'nothex' is not a commit id (40 lower-case hex "
              "digits); correct it, or delete [main.1] and run factory lock to pin it again");
    EXPECT_EQ(parse_error(git + "commit = \"" + std::string(40, 'A') + "\"\n"),
              "app.toml.lock:5:10: main.1.commit: '" + std::string(40, 'A') +
                  "' is not a commit id (40 lower-case hex digits); correct it, or delete "
                  "[main.1] and run factory lock to pin it again");
    EXPECT_EQ(parse_error(git), "app.toml.lock:1:1: main.1: a git pin needs commit; correct it, "
                                "or delete [main.1] and run factory lock to pin it again");
    EXPECT_EQ(parse_error(git + "commit = \"" + std::string(40, 'a') + "\"\nname = \"main\"\n"),
              "app.toml.lock:6:8: main.1.name: 'main' is not a full ref name (refs/heads/BRANCH, "
              "refs/tags/TAG or HEAD); correct it, or delete [main.1] and run factory lock to pin "
              "it again");
    EXPECT_EQ(parse_error("[main.2]\nkind = \"download\"\nsha256 = \"abc\"\n"),
              "app.toml.lock:3:10: main.2.sha256: 'abc' is not a sha256 (64 lower-case hex "
              "digits); correct it, or delete [main.2] and run factory lock to pin it again");
    EXPECT_EQ(parse_error("[main.base]\nkind = \"registry\"\ndigest = \"" + std::string(64, 'b') +
                          "\"\n"),
              "app.toml.lock:3:10: main.base.digest: '" + std::string(64, 'b') +
                  "' is not a manifest digest (sha256: and 64 lower-case hex digits); correct "
                  "it, or delete [main.base] and run factory lock to pin it again");
    EXPECT_EQ(parse_error("[main.base]\nkind = \"registry\"\nreference = \"h/r:1\"\n"),
              "app.toml.lock:1:1: main.base: a registry pin needs digest; correct it, or delete "
              "[main.base] and run factory lock to pin it again");
    EXPECT_EQ(parse_error("[b.base]\nkind = \"debian\"\nrelease-date = \"2024-11-09\"\n"),
              "app.toml.lock:3:16: b.base.release-date: '2024-11-09' is not a UTC time "
              "(YYYY-MM-DDTHH:MM:SSZ); correct it, or delete [b.base] and run factory lock to "
              "pin it again");
    // What the recipe says is not checked here: a pin without it is drift (builder/lock.hpp).
    EXPECT_EQ(parse_lockfile("[main.1]\nkind = \"download\"\n", "x").pins.size(), 1u);
}

TEST(RecipeLockfile, MissingFileSaysHowToMakeOne) {
    try {
        read_lockfile("/nonexistent/app.toml.lock");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::usage);
        EXPECT_STREQ(e.what(), "/nonexistent/app.toml.lock: no lock file (run factory lock "
                               "/nonexistent/app.toml)");
    }
}

} // namespace
} // namespace factory::recipe
