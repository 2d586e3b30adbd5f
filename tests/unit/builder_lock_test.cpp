// The lock file against its recipe (builder/lock.hpp): which steps are pinned, and every way a
// lock stops matching — an edited, added or removed step, another kind — as the exact line the
// user reads; a Debian base's packages compared after a bootstrap.

#include <gtest/gtest.h>

#include "factory/builder/debian_lock.hpp"
#include "factory/builder/lock.hpp"
#include "factory/recipe/parser.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

using factory::testing::write;

namespace {

using factory::recipe::Lockfile;
using factory::recipe::Pin;

const char* const recipe_text = R"(
[image]
name = "app"

[base]
image = "127.0.0.1:5000/base:1"

[[step]]
git = { url = "https://user:tok@git.example/app.git", ref = "main", dest = "/src" }

[[step]]
copy = [{ src = "a", dest = "/a" }]

[[step]]
download = { url = "https://dl.example/tool", sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", dest = "/tool" }
)";

class BuilderLock : public ::testing::Test {
  protected:
    factory::testing::TestDir dir;

    factory::recipe::Recipe load(const std::string& text) {
        write(dir / "a", "a");
        write(dir / "app.toml", text);
        factory::recipe::LoadOptions o;
        o.host_architecture = "amd64";
        return factory::recipe::load(dir / "app.toml", o);
    }

    // The lock a `factory lock` of recipe_text would write (resolved fields made up).
    Lockfile lock() {
        Lockfile l;
        for (auto pin : factory::builder::pinnable_steps(load(recipe_text))) {
            if (pin.kind == "git") pin.fields["commit"] = std::string(40, '1');
            if (pin.kind == "registry") pin.fields["digest"] = "sha256:" + std::string(64, 'b');
            l.put(pin);
        }
        return l;
    }

    std::vector<std::string> mismatches(const std::string& text, const Lockfile& l) {
        return factory::builder::lock_mismatches(load(text), l);
    }
};

std::string replace(std::string s, const std::string& from, const std::string& to) {
    auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
    return s;
}

TEST_F(BuilderLock, PinsTheStepsThatFetchWithoutCredentials) {
    auto pins = factory::builder::pinnable_steps(load(recipe_text));
    ASSERT_EQ(pins.size(), 3u);
    EXPECT_EQ(pins[0].id(), "main.base");
    EXPECT_EQ(pins[0].field("reference"), "127.0.0.1:5000/base:1");
    EXPECT_EQ(pins[1].id(), "main.1");
    EXPECT_EQ(pins[1].field("url"), "https://git.example/app.git");
    EXPECT_EQ(pins[2].id(), "main.3");
    EXPECT_EQ(pins[2].kind, "download");
}

TEST_F(BuilderLock, AMatchingLockHasNoMismatch) {
    EXPECT_EQ(mismatches(recipe_text, lock()), std::vector<std::string>{});
}

TEST_F(BuilderLock, EachDriftedItemIsOneLine) {
    auto text = replace(recipe_text, "ref = \"main\"", "ref = \"v2\"");
    text = replace(text, "https://dl.example/tool", "https://dl.example/tool2");
    EXPECT_EQ(mismatches(text, lock()),
              (std::vector<std::string>{
                  "main.1: git https://git.example/app.git main: ref main → v2",
                  "main.3: download https://dl.example/tool: url https://dl.example/tool → "
                  "https://dl.example/tool2"}));
}

TEST_F(BuilderLock, AddedAndRemovedStepsAreNamed) {
    auto text = replace(recipe_text, "[[step]]\ncopy",
                        "[[step]]\ncopy = [{ src = \"a\", dest = \"/b\" }]\n\n[[step]]\ncopy");
    // The git step is now step 1 still; the download moved from 3 to 4.
    auto m = mismatches(text, lock());
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0], "main.4: download https://dl.example/tool: not in the lock file");
    EXPECT_EQ(m[1],
              "main.3: download https://dl.example/tool: in the lock file, but the recipe has no "
              "such step");
}

TEST_F(BuilderLock, AnotherKindAtTheSamePlace) {
    auto l = lock();
    Pin p = *l.find("main.1");
    p.kind = "download";
    l.put(p);
    EXPECT_EQ(mismatches(recipe_text, l),
              std::vector<std::string>{
                  "main.1: the lock file pins a download step, the recipe has a git step"});
}

TEST(BuilderDebianLock, PackageDriftNamesEachPackage) {
    auto pinned = factory::builder::package_map("bash=5.2-1\nlibc6=2.36-9\nold=1\n");
    auto installed = factory::builder::package_map("bash=5.2-1\nlibc6=2.36-10\nnew=2\n");
    EXPECT_EQ(factory::builder::package_drift("builder.base", pinned, installed),
              (std::vector<std::string>{"builder.base: debian package libc6: 2.36-9 → 2.36-10",
                                        "builder.base: debian package old: 1 → (none)",
                                        "builder.base: debian package new: (none) → 2"}));
    EXPECT_EQ(factory::builder::package_drift("b", pinned, pinned), std::vector<std::string>{});
}

TEST(BuilderDebianLock, ReleaseDriftNamesBothDatesAndTheWaysOut) {
    Pin pin;
    pin.stage = "main";
    pin.kind = "debian";
    pin.fields = {{"suite", "bookworm"}, {"release-date", "2024-11-09T10:12:04Z"}};
    EXPECT_EQ(factory::builder::release_drift(pin, "http://deb.debian.org/debian",
                                              "2024-11-09T10:12:04Z", "app.toml"),
              "");
    EXPECT_EQ(factory::builder::release_drift(pin, "http://deb.debian.org/debian",
                                              "2025-01-11T08:59:40Z", "app.toml"),
              "the debian base drifted from the lock file: main.base: debian bookworm: the "
              "Release date of http://deb.debian.org/debian moved 2024-11-09T10:12:04Z → "
              "2025-01-11T08:59:40Z; build from a snapshot mirror that keeps "
              "2024-11-09T10:12:04Z (mirror = "
              "\"http://snapshot.debian.org/archive/debian/20241109T101204Z\" or the first "
              "snapshot after it), or move the pin (factory lock --update main.base app.toml)");
    pin.fields.erase("release-date"); // a lock written before the date was recorded
    EXPECT_EQ(factory::builder::release_drift(pin, "m", "2025-01-11T08:59:40Z", "app.toml"), "");
}

} // namespace
