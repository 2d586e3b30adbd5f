// The plan: for each step kind, which inputs make its key. Changing one input alone must change
// the key of exactly that step and of the steps after it; everything before keeps its key.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "factory/builder/builder.hpp"
#include "factory/builder/plan.hpp"
#include "factory/util/error.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

using factory::testing::write;

namespace fs = std::filesystem;
using factory::builder::BuildOptions;
using factory::builder::Plan;

namespace {

class PlanKeys : public ::testing::Test {
  protected:
    factory::testing::TestDir dir;
    BuildOptions options;

    void SetUp() override { options.store_root = dir / "store"; }

    Plan plan(const std::string& recipe) {
        write(dir / "recipe.toml", recipe);
        factory::Progress quiet(factory::ProgressMode::quiet);
        return factory::builder::plan_recipe(dir / "recipe.toml", options, quiet);
    }

    // "id=key" of every step, in plan order.
    std::vector<std::string> keys(const std::string& recipe) {
        std::vector<std::string> out;
        for (const auto& stage : plan(recipe).stages)
            for (const auto& s : stage.steps)
                out.push_back(s.id + "=" + s.key);
        return out;
    }

    // Which steps changed key between two plans.
    static std::vector<std::size_t> changed(const std::vector<std::string>& a,
                                            const std::vector<std::string>& b) {
        EXPECT_EQ(a.size(), b.size());
        std::vector<std::size_t> out;
        for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
            if (a[i] != b[i]) out.push_back(i);
        return out;
    }

    static std::string replace(std::string s, const std::string& from, const std::string& to) {
        auto at = s.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) s.replace(at, from.size(), to);
        return s;
    }
};

using Steps = std::vector<std::size_t>;

const std::string copy_run_recipe = R"([image]
name = "p"

[[step]]
copy = [{ src = "a.txt", dest = "/a.txt" }]

[[step]]
copy = [{ src = "b.txt", dest = "/b.txt" }]

[[step]]
run = ["/bin/true", "three"]

[[step]]
run = ["/bin/true", "four"]
user = "0:0"
workdir = "/"
network = true

[config]
env = { K = "v" }
)";

} // namespace

TEST_F(PlanKeys, StagesAndStepsInOrderWithKindsAndKeys) {
    write(dir / "a.txt", "a");
    write(dir / "b.txt", "b");
    auto p = plan(copy_run_recipe);
    ASSERT_EQ(p.stages.size(), 1u);
    const auto& steps = p.stages[0].steps;
    ASSERT_EQ(steps.size(), 4u);
    EXPECT_EQ(steps[0].kind, "copy");
    EXPECT_EQ(steps[0].id, "main 1/4");
    EXPECT_EQ(steps[0].what, "copy a.txt -> /a.txt");
    EXPECT_EQ(steps[2].kind, "run");
    EXPECT_EQ(steps[2].what, "run /bin/true three");
    for (const auto& s : steps) {
        EXPECT_TRUE(std::regex_match(s.key, std::regex("[0-9a-f]{64}"))) << s.id << " " << s.key;
        EXPECT_FALSE(s.cached) << s.id;
        EXPECT_FALSE(s.reasons.empty()) << s.id;
    }
    EXPECT_EQ(steps[0].fields.at(1).first, "parent");
    EXPECT_EQ(steps[0].fields.at(1).second, "scratch");
    EXPECT_EQ(steps[1].fields.at(1).second, steps[0].key) << "a step's parent is the key below";
    EXPECT_EQ(keys(copy_run_recipe), keys(copy_run_recipe)) << "planning is deterministic";
}

TEST_F(PlanKeys, CopyKeyIsMadeOfItsFilesAndItsItems) {
    write(dir / "a.txt", "a");
    write(dir / "b.txt", "b");
    auto before = keys(copy_run_recipe);
    write(dir / "b.txt", "B");
    EXPECT_EQ(changed(before, keys(copy_run_recipe)), (Steps{1, 2, 3})) << "b.txt's content";
    write(dir / "b.txt", "b");
    ::chmod((dir / "b.txt").c_str(), 0755);
    EXPECT_EQ(changed(before, keys(copy_run_recipe)), (Steps{1, 2, 3})) << "b.txt's exec bit";
    ::chmod((dir / "b.txt").c_str(), 0644);
    EXPECT_EQ(changed(before, keys(copy_run_recipe)), Steps{}) << "back as it was";
    auto moved = replace(copy_run_recipe, R"(dest = "/a.txt")", R"(dest = "/x/a.txt")");
    EXPECT_EQ(changed(before, keys(moved)), (Steps{0, 1, 2, 3})) << "the first copy's dest";
    auto mode = replace(copy_run_recipe, R"(dest = "/b.txt")", R"(dest = "/b.txt", mode = "0600")");
    EXPECT_EQ(changed(before, keys(mode)), (Steps{1, 2, 3})) << "the second copy's mode";
}

TEST_F(PlanKeys, RunKeyIsMadeOfItsCommandAndItsWorld) {
    write(dir / "a.txt", "a");
    write(dir / "b.txt", "b");
    auto before = keys(copy_run_recipe);
    auto arg = replace(copy_run_recipe, R"("three")", R"("3")");
    EXPECT_EQ(changed(before, keys(arg)), (Steps{2, 3})) << "an argument";
    auto user = replace(copy_run_recipe, R"(user = "0:0")", R"(user = "1:1")");
    EXPECT_EQ(changed(before, keys(user)), (Steps{3})) << "the user";
    auto workdir = replace(copy_run_recipe, R"(workdir = "/")", R"(workdir = "/tmp")");
    EXPECT_EQ(changed(before, keys(workdir)), (Steps{3})) << "the workdir";
    auto network = replace(copy_run_recipe, "network = true", "network = false");
    EXPECT_EQ(changed(before, keys(network)), (Steps{3})) << "the network";
    auto env = replace(copy_run_recipe, R"(K = "v")", R"(K = "w")");
    EXPECT_EQ(changed(before, keys(env)), (Steps{2, 3})) << "the stage's env reaches RUN steps";
    auto cache = replace(copy_run_recipe, "network = true", "network = true\ncache = [\"/c\"]");
    EXPECT_EQ(changed(before, keys(cache)), (Steps{3})) << "a cache mount";
}

TEST_F(PlanKeys, EpochAndCompressionReachEveryStep) {
    write(dir / "a.txt", "a");
    write(dir / "b.txt", "b");
    auto before = keys(copy_run_recipe);
    options.source_date_epoch = "1700000000";
    EXPECT_EQ(changed(before, keys(copy_run_recipe)), (Steps{0, 1, 2, 3})) << "the epoch";
    options.source_date_epoch.reset();
    auto zstd = replace(copy_run_recipe, R"(name = "p")", "name = \"p\"\ncompression = \"zstd\"");
    EXPECT_EQ(changed(before, keys(zstd)), (Steps{0, 1, 2, 3})) << "the compression";
}

TEST_F(PlanKeys, DebianBaseKeyIsMadeOfItsSpec) {
    const std::string recipe = R"([image]
name = "d"

[base]
debian = { suite = "bookworm", variant = "minbase", include = ["git"], mirror = "http://127.0.0.1:9/debian" }

[[step]]
run = ["/bin/true"]
)";
    auto before = keys(recipe);
    ASSERT_EQ(before.size(), 2u);
    EXPECT_TRUE(before[0].starts_with("main base="));
    EXPECT_EQ(changed(before, keys(replace(recipe, "bookworm", "trixie"))), (Steps{0, 1}));
    EXPECT_EQ(changed(before, keys(replace(recipe, R"(["git"])", R"(["git", "curl"])"))),
              (Steps{0, 1}));
    EXPECT_EQ(changed(before, keys(replace(recipe, "127.0.0.1:9", "127.0.0.1:10"))), (Steps{0, 1}));
    EXPECT_EQ(changed(before, keys(replace(recipe, R"(["/bin/true"])", R"(["/bin/false"])"))),
              (Steps{1}));
}

TEST_F(PlanKeys, ImageBaseKeyIsMadeOfTheImage) {
    // Two images in layouts, made by copy-only builds (no container needed).
    write(dir / "img/one.txt", "one");
    write(dir / "img/recipe.toml", "[image]\nname = \"img\"\n\n[[step]]\ncopy = [{ src = "
                                   "\"one.txt\", dest = \"/one.txt\" }]\n");
    factory::Progress quiet(factory::ProgressMode::quiet);
    for (const char* layout : {"l1", "l2"}) {
        BuildOptions o = options;
        o.outputs = {"oci:" + (dir / layout).string()};
        factory::builder::build_recipe(dir / "img/recipe.toml", o, quiet);
        write(dir / "img/one.txt", "two");
    }
    const std::string recipe =
        "[image]\nname = \"b\"\n\n[base]\nimage = \"oci:" + (dir / "l1").string() +
        "\"\n\n[[step]]\nrun = [\"/bin/true\"]\n";
    auto before = keys(recipe);
    ASSERT_EQ(before.size(), 2u);
    EXPECT_TRUE(before[0].starts_with("main base="));
    EXPECT_EQ(changed(before, keys(recipe)), Steps{});
    EXPECT_EQ(changed(before, keys(replace(recipe, "/l1", "/l2"))), (Steps{0, 1}));
}

TEST_F(PlanKeys, ACopyFromAStageThatWouldRebuildHasNoKeyYet) {
    write(dir / "a.txt", "a");
    auto p = plan(R"([image]
name = "m"

[stage.builder.base]
image = "scratch"

[[stage.builder.step]]
run = ["/bin/true"]

[[step]]
copy = [{ from = "builder", src = "/x", dest = "/x" }]

[[step]]
copy = [{ src = "a.txt", dest = "/a.txt" }]
)");
    ASSERT_EQ(p.stages.size(), 2u);
    EXPECT_EQ(p.stages[0].name, "builder");
    EXPECT_EQ(p.stages[1].needs, std::vector<std::string>{"builder"});
    const auto& copy = p.stages[1].steps[0];
    EXPECT_EQ(copy.inputs, std::vector<std::string>{"builder"});
    EXPECT_EQ(copy.key, "");
    EXPECT_EQ(copy.reasons, std::vector<std::string>{"stage 'builder' rebuilds first"});
    EXPECT_EQ(p.stages[1].steps[1].key, "") << "a step on top of an unknown key";
}

TEST_F(PlanKeys, AMissingSecretIsARecipeErrorBeforeAnythingRuns) {
    write(dir / "recipe.toml", R"([image]
name = "s"

[[step]]
run = ["/bin/true"]

[[step]]
run = ["/bin/true"]
secret = [{ id = "token", env = "TOKEN" }]
)");
    factory::Progress quiet(factory::ProgressMode::quiet);
    try {
        factory::builder::plan_recipe(dir / "recipe.toml", options, quiet);
        FAIL() << "no error";
    } catch (const factory::Error& e) {
        EXPECT_EQ(e.code(), factory::ExitCode::usage);
        EXPECT_TRUE(std::string(e.what()).find("the step uses secret 'token', but no --secret "
                                               "id=token,src=FILE (or env=VAR) was given") !=
                    std::string::npos)
            << e.what();
        EXPECT_TRUE(std::string(e.what()).find("recipe.toml:9:") != std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "store/actions")) << "nothing was keyed or recorded";
}
