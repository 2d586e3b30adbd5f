// recipe::load / recipe::parse: a recipe file → the validated model, and every error the user
// can make → the exact message, located at file:line:col.
#include "factory/recipe/parser.hpp"
#include "factory/util/error.hpp"
#include "tests/unit/test_dir.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <string>

namespace factory::recipe {
namespace {

namespace fs = std::filesystem;

class RecipeParser : public ::testing::Test {
  protected:
    RecipeParser() { options.host_architecture = "amd64"; }

    fs::path write(const std::string& name, const std::string& text) {
        fs::path path = dir / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }
    // The recipe file's path as messages show it.
    std::string file() const { return (dir / "recipe.toml").string(); }

    Recipe load_text(const std::string& text) { return load(write("recipe.toml", text), options); }

    // The message of the usage error loading `text` throws ("" and a test failure if none).
    std::string error(const std::string& text) {
        try {
            load_text(text);
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ExitCode::usage) << e.what();
            return e.what();
        }
        ADD_FAILURE() << "no error for:\n" << text;
        return "";
    }

    testing::TestDir dir;
    LoadOptions options;
};

const std::string image = "[image]\nname = \"hello\"\n";

TEST_F(RecipeParser, FullRecipe) {
    fs::create_directories(dir / "src" / "bin");
    fs::create_directories(dir / "tools");
    write("src/.dockerignore", "*.o\n");
    Recipe r = load_text(R"([image]
name = "registry.example.com:5000/team/hello"
tags = ["latest", "${VERSION}"]
epoch = 1700000000
compression = "zstd"
platform = "linux/arm64"
stage = "final"
context = "src"
ignore = ".dockerignore"
annotations = { "org.opencontainers.image.source" = "https://example.com/hello" }

[args]
VERSION = "1.0"

[contexts]
tools = "tools"

[stage.builder]
base = "oci:images/base:1.0"

[[stage.builder.step]]
copy = { src = ["bin/*", "lib/**/*.so"], dest = "/out/", mode = "0755", uid = 1000, gid = 1000 }

[stage.final]
base = { stage = "builder" }

[[stage.final.step]]
copy = [ { src = "/out/busybox", dest = "/bin/busybox", from = "builder" },
         { src = "helper", dest = "/usr/bin/helper", context = "tools" } ]

[stage.final.config]
env = { PATH = "/bin", LANG = "C.UTF-8", VERSION = "${VERSION}" }
entrypoint = ["/bin/sh"]
cmd = ["-c", "echo hi"]
workdir = "/app"
user = "1000:1000"
labels = { "a" = "b" }
ports = ["8080", "53/udp", 9000]
volumes = ["/data"]
stop_signal = "SIGTERM"
)");
    EXPECT_EQ(r.file, dir / "recipe.toml");
    EXPECT_EQ(r.context, dir / "src");
    EXPECT_EQ(r.name, "registry.example.com:5000/team/hello");
    EXPECT_EQ(r.tags, (std::vector<std::string>{"latest", "1.0"}));
    EXPECT_EQ(r.epoch, 1700000000);
    EXPECT_EQ(r.compression, Compression::zstd);
    EXPECT_EQ(r.os, "linux");
    EXPECT_EQ(r.architecture, "arm64");
    EXPECT_EQ(r.variant, "");
    EXPECT_EQ(r.ignore_file, ".dockerignore");
    EXPECT_EQ(r.annotations, (std::map<std::string, std::string>{{"org.opencontainers.image.source",
                                                                  "https://example.com/hello"}}));
    EXPECT_EQ(r.contexts, (std::map<std::string, fs::path>{{"tools", dir / "tools"}}));
    EXPECT_EQ(r.args, (std::map<std::string, std::string>{{"VERSION", "1.0"}}));
    EXPECT_EQ(r.output_stage, "final");

    ASSERT_EQ(r.stages.size(), 2u);
    const Stage& builder = r.stages[0];
    EXPECT_EQ(builder.name, "builder");
    EXPECT_EQ(builder.where.str(), file() + ":18:1");
    EXPECT_EQ(builder.base.kind, Base::Kind::oci_layout);
    EXPECT_EQ(builder.base.path, dir / "images" / "base");
    EXPECT_EQ(builder.base.tag, "1.0");
    EXPECT_EQ(builder.base.where.str(), file() + ":19:8");
    EXPECT_FALSE(builder.has_config);
    ASSERT_EQ(builder.steps.size(), 1u);
    EXPECT_EQ(builder.steps[0].kind, StepKind::copy);
    EXPECT_EQ(builder.steps[0].where.str(), file() + ":21:1");
    ASSERT_EQ(builder.steps[0].copy.size(), 1u);
    const CopyItem& out = builder.steps[0].copy[0];
    EXPECT_EQ(out.src, (std::vector<std::string>{"bin/*", "lib/**/*.so"}));
    EXPECT_EQ(out.dest, "/out/");
    EXPECT_EQ(out.mode, 0755u);
    EXPECT_EQ(out.uid, 1000u);
    EXPECT_EQ(out.gid, 1000u);
    EXPECT_EQ(out.from_stage, "");
    EXPECT_EQ(out.context, "");
    EXPECT_EQ(out.where.str(), file() + ":22:8");

    const Stage& final = r.stages[1];
    EXPECT_EQ(final.name, "final");
    EXPECT_EQ(final.base.kind, Base::Kind::stage);
    EXPECT_EQ(final.base.stage, "builder");
    EXPECT_EQ(final.base.where.str(), file() + ":25:18");
    ASSERT_EQ(final.steps.size(), 1u);
    ASSERT_EQ(final.steps[0].copy.size(), 2u);
    const CopyItem& busybox = final.steps[0].copy[0];
    EXPECT_EQ(busybox.src, (std::vector<std::string>{"out/busybox"})); // relative to the stage
    EXPECT_EQ(busybox.dest, "/bin/busybox");
    EXPECT_EQ(busybox.from_stage, "builder");
    EXPECT_FALSE(busybox.mode);
    EXPECT_FALSE(busybox.uid);
    EXPECT_EQ(busybox.where.str(), file() + ":28:10");
    const CopyItem& helper = final.steps[0].copy[1];
    EXPECT_EQ(helper.context, "tools");
    EXPECT_EQ(helper.where.str(), file() + ":29:10");

    ASSERT_TRUE(final.has_config);
    const ImageConfig& c = final.config;
    // In the order the recipe wrote them, not toml++'s sorted order.
    EXPECT_EQ(c.env, (std::vector<std::pair<std::string, std::string>>{
                         {"PATH", "/bin"}, {"LANG", "C.UTF-8"}, {"VERSION", "1.0"}}));
    EXPECT_EQ(c.entrypoint, (std::vector<std::string>{"/bin/sh"}));
    EXPECT_EQ(c.cmd, (std::vector<std::string>{"-c", "echo hi"}));
    EXPECT_EQ(c.workdir, "/app");
    EXPECT_EQ(c.user, "1000:1000");
    EXPECT_EQ(c.labels, (std::map<std::string, std::string>{{"a", "b"}}));
    EXPECT_EQ(c.exposed_ports, (std::vector<std::string>{"8080/tcp", "53/udp", "9000/tcp"}));
    EXPECT_EQ(c.volumes, (std::vector<std::string>{"/data"}));
    EXPECT_EQ(c.stop_signal, "SIGTERM");
}

TEST_F(RecipeParser, Defaults) {
    Recipe r = load_text(image + "[[step]]\ncopy = { src = \"a\", dest = \"/a\" }\n");
    EXPECT_EQ(r.tags, (std::vector<std::string>{"latest"}));
    EXPECT_EQ(r.epoch, 0);
    EXPECT_EQ(r.compression, Compression::gzip);
    EXPECT_EQ(r.architecture, "amd64");
    EXPECT_EQ(r.context, dir.path());
    EXPECT_EQ(r.ignore_file, ""); // no .factoryignore
    EXPECT_EQ(r.output_stage, "main");
    ASSERT_EQ(r.stages.size(), 1u);
    EXPECT_EQ(r.stages[0].name, "main");
    EXPECT_EQ(r.stages[0].where.str(), file() + ":3:1");
    EXPECT_EQ(r.stages[0].base.kind, Base::Kind::scratch); // no [base]: scratch
    EXPECT_FALSE(r.stages[0].has_config);
    EXPECT_FALSE(r.stages[0].config.entrypoint);

    write(".factoryignore", "*.tmp\n");
    EXPECT_EQ(load_text("base = \"scratch\"\n" + image).ignore_file, ".factoryignore");
}

TEST_F(RecipeParser, HostArchitectureDetected) {
    options.host_architecture.clear();
    Recipe r = load_text("base = \"scratch\"\n" + image);
    EXPECT_FALSE(r.architecture.empty());
    EXPECT_NE(r.architecture, "x86_64"); // GOARCH spelling
}

TEST_F(RecipeParser, PlatformWithVariant) {
    Recipe r = load_text("base = \"scratch\"\n" + image + "platform = \"linux/arm/v7\"\n");
    EXPECT_EQ(r.architecture, "arm");
    EXPECT_EQ(r.variant, "v7");
}

TEST_F(RecipeParser, OutputStageDefaultsToTheLastDeclared) {
    // Declared second-to-last in the file but sorted first by toml++: "a" < "z".
    Recipe r = load_text(image + R"(
[stage.z]
base = "scratch"
[stage.a]
base = "stage:z"
)");
    EXPECT_EQ(r.output_stage, "a");
    ASSERT_EQ(r.stages.size(), 2u);
    EXPECT_EQ(r.stages[0].name, "z");
    EXPECT_EQ(r.stages[1].name, "a");
}

TEST_F(RecipeParser, StagesInDependencyOrder) {
    Recipe r = load_text("base = \"stage:c\"\n" + image + R"(
[[step]]
copy = { from = "b", src = "x", dest = "/x" }
[stage.a]
base = "scratch"
[stage.b]
base = "stage:a"
[stage.c]
base = "scratch"
)");
    std::vector<std::string> names;
    for (const auto& s : r.stages)
        names.push_back(s.name);
    EXPECT_EQ(names, (std::vector<std::string>{"c", "a", "b", "main"}));
    EXPECT_EQ(r.output_stage, "main");
}

// --- errors: TOML, types, keys -----------------------------------------------------------

TEST_F(RecipeParser, MalformedToml) {
    EXPECT_EQ(error("[image]\nname = \"hello\n"),
              file() + ":2:14: Error while parsing string: unescaped control characters other "
                       "than TAB (U+0009) are explicitly prohibited");
    EXPECT_EQ(error("[image\nname = 1\n"),
              file() + ":1:7: Error while parsing table header: expected ']', saw '\\n'");
}

TEST_F(RecipeParser, DuplicateKey) {
    EXPECT_EQ(error(image + "name = \"x\"\n"),
              file() + ":3:8: Error while parsing key-value pair: cannot redefine existing "
                       "string 'name'");
}

TEST_F(RecipeParser, WrongType) {
    EXPECT_EQ(error(image + "epoch = \"0\"\n"),
              file() + ":3:9: [image] epoch: expected an integer, got a string");
    EXPECT_EQ(error("image = []\n"), file() + ":1:9: [image]: expected a table, got an array");
    EXPECT_EQ(error(image + "tags = \"1.0\"\n"),
              file() + ":3:8: [image] tags: expected an array of strings, got a string "
                       "(write tags = [\"1.0\"])");
    EXPECT_EQ(error(image + "tags = [\"1.0\", 2]\n"),
              file() + ":3:16: [image] tags: expected a string, got an integer");
    EXPECT_EQ(error("base = 1\n" + image),
              file() + ":1:8: base: expected a string or a table, got an integer");
    EXPECT_EQ(error(image + "[step]\ncopy = {}\n"),
              file() + ":3:1: step: expected an array, got a table (write each step as a "
                       "[[step]] table)");
}

TEST_F(RecipeParser, UnknownKeyWithDidYouMean) {
    EXPECT_EQ(error(image + "tagz = [\"x\"]\n"),
              file() + ":3:1: unknown key 'tagz' in [image]; did you mean 'tags'?");
    EXPECT_EQ(error("[imgae]\nname = \"x\"\n"),
              file() + ":1:2: unknown top-level key 'imgae'; did you mean 'image'?");
    EXPECT_EQ(error(image + "[[step]]\ncopy = { srcs = \"a\", dest = \"/a\" }\n"),
              file() + ":4:10: unknown key 'srcs' in [[step]] copy; did you mean 'src'?");
    EXPECT_EQ(error(image + "[stage.b]\nbsae = \"scratch\"\n"),
              file() + ":4:1: unknown key 'bsae' in [stage.b]; did you mean 'base'?");
}

TEST_F(RecipeParser, TopLevelKeyAfterATable) {
    // In TOML, base here is [image].base: say so rather than suggest 'name'.
    EXPECT_EQ(error(image + "base = \"scratch\"\n"),
              file() + ":3:1: unknown key 'base' in [image]; a top-level key must come before "
                       "the first [table] header");
    EXPECT_EQ(
        error(image + "[[step]]\ncopy = { src = \"a\", dest = \"/a\" }\nbase = \"scratch\"\n"),
        file() + ":5:1: unknown key 'base' in [[step]]; a top-level key must come before "
                 "the first [table] header");
    // Not where a stage's own keys are expected.
    EXPECT_EQ(error(image + "[stage.a]\nimage = \"scratch\"\n"),
              file() + ":4:1: unknown key 'image' in [stage.a]");
}

TEST_F(RecipeParser, UnknownKeyWithoutSuggestion) {
    EXPECT_EQ(error("base = \"scratch\"\n" + image + "[config]\nhealthcheck = \"x\"\n"),
              file() + ":5:1: unknown key 'healthcheck' in [config]");
}

TEST_F(RecipeParser, MissingImage) {
    EXPECT_EQ(error("base = \"scratch\"\n"), file() + ":1:1: missing required table [image]");
}

TEST_F(RecipeParser, MissingName) {
    EXPECT_EQ(error("\n[image]\ntags = [\"1\"]\n"),
              file() + ":2:1: missing required key 'name' in [image]");
}

TEST_F(RecipeParser, NoStages) {
    EXPECT_EQ(error(image), file() + ":1:1: the recipe has no stages: add [base] and [[step]], or "
                                     "[stage.NAME] tables");
}

TEST_F(RecipeParser, ConfigWithoutTopLevelStage) {
    EXPECT_EQ(error(image + "[config]\nuser = \"1\"\n[stage.a]\nbase = \"scratch\"\n"),
              file() + ":3:1: [config] belongs to the top-level stage, which has no [base] or "
                       "[[step]]; put it in [stage.NAME.config]");
}

// --- [image] -------------------------------------------------------------------------------

TEST_F(RecipeParser, BadName) {
    EXPECT_EQ(error("[image]\nname = \"Hello\"\n"),
              file() + ":2:8: [image] name: invalid image name \"Hello\": expected lowercase "
                       "components ([a-z0-9] separated by '.', '_', '__' or '-') joined by "
                       "'/', after an optional registry host[:port]/");
}

TEST_F(RecipeParser, BadTag) {
    EXPECT_EQ(error(image + "tags = [\"ok\", \"-bad\"]\n"),
              file() + ":3:15: [image] tags: invalid tag \"-bad\": expected "
                       "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}");
    EXPECT_EQ(error(image + "tags = [\"a\", \"a\"]\n"),
              file() + ":3:14: [image] tags: duplicate tag \"a\"");
    EXPECT_EQ(error(image + "tags = []\n"), file() + ":3:8: [image] tags: needs at least one tag");
}

TEST_F(RecipeParser, BadEpoch) {
    EXPECT_EQ(error(image + "epoch = -1\n"),
              file() + ":3:9: [image] epoch: -1 is out of range (0 to 253402300799)");
}

TEST_F(RecipeParser, SourceDateEpochOverridesEpoch) {
    options.source_date_epoch = "1234";
    EXPECT_EQ(load_text("base = \"scratch\"\n" + image + "epoch = 99\n").epoch, 1234);
    EXPECT_EQ(load_text("base = \"scratch\"\n" + image).epoch, 1234);
    options.source_date_epoch = "253402300800";
    EXPECT_EQ(error("base = \"scratch\"\n" + image),
              file() + ": SOURCE_DATE_EPOCH 253402300800 is out of range (0 to 253402300799)");
    options.source_date_epoch = "99999999999999999999"; // over int64
    EXPECT_EQ(error("base = \"scratch\"\n" + image),
              file() + ": SOURCE_DATE_EPOCH 99999999999999999999 is out of range (0 to "
                       "253402300799)");
    for (std::string bad : {"-5", "abc", "12 ", "+1", "0x10"}) {
        options.source_date_epoch = bad;
        EXPECT_EQ(error("base = \"scratch\"\n" + image),
                  file() + ": SOURCE_DATE_EPOCH=" + bad +
                      ": expected a non-negative integer (seconds since 1970)");
    }
}

TEST_F(RecipeParser, BadCompressionAndPlatform) {
    EXPECT_EQ(error(image + "compression = \"xz\"\n"),
              file() + ":3:15: [image] compression: unknown compression \"xz\" (expected "
                       "\"gzip\" or \"zstd\")");
    EXPECT_EQ(error(image + "platform = \"linux/x86_64\"\n"),
              file() + ":3:12: [image] platform: unknown architecture \"x86_64\" (expected a "
                       "GOARCH name such as \"amd64\" or \"arm64\"); did you mean "
                       "\"linux/amd64\"?");
    EXPECT_EQ(error(image + "platform = \"amd64\"\n"),
              file() + ":3:12: [image] platform: invalid platform \"amd64\": expected "
                       "\"os/arch\" or \"os/arch/variant\" such as \"linux/amd64\"");
    EXPECT_EQ(error(image + "platform = \"windows/amd64\"\n"),
              file() + ":3:12: [image] platform: unsupported os \"windows\": only \"linux\" "
                       "is supported");
}

TEST_F(RecipeParser, ContextAndIgnore) {
    EXPECT_EQ(error(image + "context = \"nope\"\n"),
              file() + ":3:11: [image] context: \"nope\" is not a directory (\"" +
                  (dir / "nope").string() + "\")");
    EXPECT_EQ(error(image + "ignore = \".dockerignore\"\n"),
              file() +
                  ":3:10: [image] ignore: \".dockerignore\" is not a file in the context "
                  "(\"" +
                  (dir / ".dockerignore").string() + "\")");
    EXPECT_EQ(error(image + "ignore = \"../x\"\n"),
              file() + ":3:10: [image] ignore: must be a path relative to the context: "
                       "\"../x\"");
}

TEST_F(RecipeParser, UnknownOutputStage) {
    EXPECT_EQ(error(image + "stage = \"fnal\"\n[stage.final]\nbase = \"scratch\"\n"),
              file() + ":3:9: [image] stage: unknown stage 'fnal'; did you mean 'final'?");
}

// --- [args] and ${NAME} ----------------------------------------------------------------------

TEST_F(RecipeParser, ArgExpansion) {
    options.args = {{"TAG", "2.0"}};
    Recipe r = load_text(R"([image]
name = "hello-${SUFFIX}"
tags = ["${TAG}", "v${TAG}"]
annotations = { a = "$$${TAG}", b = "cost: $5, $${", c = "${SUFFIX}${SUFFIX}" }

[args]
SUFFIX = "x"
TAG = "1.0"
LITERAL = "${NOT_EXPANDED}"

[[step]]
copy = { src = "${SUFFIX}.bin", dest = "/${SUFFIX}" }
)");
    EXPECT_EQ(r.name, "hello-x");
    EXPECT_EQ(r.tags, (std::vector<std::string>{"2.0", "v2.0"}));
    EXPECT_EQ(r.args, (std::map<std::string, std::string>{
                          {"LITERAL", "${NOT_EXPANDED}"}, {"SUFFIX", "x"}, {"TAG", "2.0"}}));
    // "$${" is a literal "${"; the expansion itself is not expanded again.
    EXPECT_EQ(r.annotations, (std::map<std::string, std::string>{
                                 {"a", "$${TAG}"}, {"b", "cost: $5, ${"}, {"c", "xx"}}));
    EXPECT_EQ(r.stages[0].steps[0].copy[0].src, (std::vector<std::string>{"x.bin"}));
    EXPECT_EQ(r.stages[0].steps[0].copy[0].dest, "/x");
}

TEST_F(RecipeParser, ExpandedValuesAreValidated) {
    options.args = {{"TAG", "not a tag"}};
    EXPECT_EQ(error("base = \"scratch\"\n" + image + "tags = [\"${TAG}\"]\n[args]\nTAG = \"1\"\n"),
              file() + ":4:9: [image] tags: invalid tag \"not a tag\": expected "
                       "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}");
}

TEST_F(RecipeParser, UnknownArg) {
    EXPECT_EQ(error(image + "tags = [\"${VERSON}\"]\n[args]\nVERSION = \"1\"\n"),
              file() + ":3:9: [image] tags: unknown arg ${VERSON}; did you mean ${VERSION}?");
    EXPECT_EQ(error(image + "tags = [\"${FOO}\"]\n[args]\nA = \"1\"\nB = \"2\"\n"),
              file() + ":3:9: [image] tags: unknown arg ${FOO} (declared: A, B)");
    EXPECT_EQ(error(image + "tags = [\"${FOO\"]\n"),
              file() + ":3:9: [image] tags: unterminated ${ (write $${ for a literal ${)");
    EXPECT_EQ(error(image + "tags = [\"${A:-x}\"]\n"),
              file() + ":3:9: [image] tags: invalid arg reference \"${A:-x}\": expected "
                       "${NAME} with NAME made of letters, digits and _ (write $${ for a "
                       "literal ${)");
}

TEST_F(RecipeParser, ArgOverrideForUndeclaredArg) {
    options.args = {{"NAME", "x"}};
    EXPECT_EQ(error("base = \"scratch\"\n" + image + "[args]\na = \"1\"\nb = \"2\"\n"),
              file() + ":4:1: --arg NAME: the recipe declares no arg NAME (declared: a, b)");
    EXPECT_EQ(error("base = \"scratch\"\n" + image),
              file() + ": --arg NAME: the recipe declares no arg NAME (declared: none)");
}

TEST_F(RecipeParser, BadArgs) {
    EXPECT_EQ(error(image + "[args]\n1X = \"a\"\n"),
              file() + ":4:1: [args]: invalid arg name '1X' (letters, digits and _, not "
                       "starting with a digit)");
    EXPECT_EQ(error(image + "[args]\nX = 1\n"),
              file() + ":4:5: [args] X: expected a string, got an integer");
}

// --- [base] ---------------------------------------------------------------------------------

TEST_F(RecipeParser, BaseForms) {
    Recipe r = load_text("base = \"oci-archive:../base.tar\"\n" + image);
    EXPECT_EQ(r.stages[0].base.kind, Base::Kind::oci_archive);
    EXPECT_EQ(r.stages[0].base.path, dir.path().parent_path() / "base.tar");
    EXPECT_EQ(r.stages[0].base.tag, "");
    r = load_text(image + "[base]\nimage = \"oci:/abs/layout:v1.2\"\n");
    EXPECT_EQ(r.stages[0].base.kind, Base::Kind::oci_layout);
    EXPECT_EQ(r.stages[0].base.path, "/abs/layout");
    EXPECT_EQ(r.stages[0].base.tag, "v1.2");
    EXPECT_EQ(r.stages[0].base.where.str(), file() + ":4:9");
}

TEST_F(RecipeParser, RegistryBases) {
    const std::string d = "sha256:" + std::string(64, 'e');
    for (std::string ref :
         std::vector<std::string>{"registry.example.com/team/base:1.2", "localhost:5000/base",
                                  "127.0.0.1:5000/a/b@" + d, "r.io/x:tag@" + d}) {
        auto r = load_text("base = \"" + ref + "\"\n" + image);
        EXPECT_EQ(r.stages[0].base.kind, Base::Kind::registry) << ref;
        EXPECT_EQ(r.stages[0].base.reference, ref);
    }
    auto r = load_text(image + "[base]\nimage = \"docker://r.io/team/base:1\"\n");
    EXPECT_EQ(r.stages[0].base.kind, Base::Kind::registry);
    EXPECT_EQ(r.stages[0].base.reference, "r.io/team/base:1");
}

TEST_F(RecipeParser, BadBase) {
    EXPECT_EQ(error("base = \"debian:bookworm\"\n" + image),
              file() + ":1:8: base: unsupported base image \"debian:bookworm\": expected "
                       "\"scratch\", \"oci:DIR[:TAG]\", \"oci-archive:FILE[:TAG]\", "
                       "\"stage:NAME\" or a registry reference HOST/REPO[:TAG][@sha256:DIGEST]");
    // A registry reference needs its host: a bare name would silently mean Docker Hub.
    EXPECT_NE(error("base = \"team/base:1\"\n" + image).find("unsupported base image"),
              std::string::npos);
    EXPECT_NE(error("base = \"r.io/Team/base\"\n" + image).find("unsupported base image"),
              std::string::npos);
    EXPECT_NE(error("base = \"r.io/team/base@sha256:abc\"\n" + image).find("unsupported base"),
              std::string::npos);
    EXPECT_EQ(error(image + "[base]\ndebian = { suite = \"bookworm\" }\nstage = \"x\"\n"),
              file() + ":3:1: [base]: has both 'debian' and 'stage'; use one");
    EXPECT_EQ(error(image + "[base]\nimage = \"scratch\"\nstage = \"x\"\n"),
              file() + ":3:1: [base]: has both 'image' and 'stage'; use one");
    EXPECT_EQ(error(image + "[base]\n"),
              file() + ":3:1: [base]: needs 'image', 'stage' or 'debian'");
    EXPECT_EQ(error("base = \"oci:\"\n" + image), file() + ":1:8: base: oci layout path is empty");
    EXPECT_EQ(error("base = \"oci:dir: bad\"\n" + image),
              file() + ":1:8: base: invalid tag \" bad\" (expected an image-spec ref.name such "
                       "as \"1.0\")");
}

// --- [base] debian ----------------------------------------------------------------------------

std::string debian_base(const std::string& table) {
    return image + "[base]\ndebian = " + table + "\n";
}

TEST_F(RecipeParser, DebianBaseDefaults) {
    Recipe r = load_text(debian_base("{ suite = \"bookworm\" }"));
    const Base& base = r.stages[0].base;
    EXPECT_EQ(base.kind, Base::Kind::debian);
    EXPECT_EQ(base.where.str(), file() + ":4:10");
    EXPECT_EQ(base.debian.suite, "bookworm");
    EXPECT_EQ(base.debian.variant, "minbase");
    EXPECT_TRUE(base.debian.include.empty());
    EXPECT_EQ(base.debian.mirror, ""); // the host's, resolved when building
    EXPECT_EQ(base.debian.components, (std::vector<std::string>{"main"}));
    EXPECT_EQ(base.debian.architecture, "amd64");

    // Top-level inline form, and the architecture from the image's platform.
    r = load_text("base = { debian = { suite = \"sid\", variant = \"standard\" } }\n" + image +
                  "platform = \"linux/arm/v7\"\n");
    EXPECT_EQ(r.stages[0].base.debian.architecture, "armhf");
    EXPECT_EQ(r.stages[0].base.debian.variant, "standard");
    r = load_text("base = { debian = { suite = \"sid\", architecture = \"ppc64el\" } }\n" + image +
                  "platform = \"linux/ppc64le\"\n");
    EXPECT_EQ(r.stages[0].base.debian.architecture, "ppc64el");
}

TEST_F(RecipeParser, DebianBaseErrors) {
    EXPECT_EQ(error(debian_base("{ variant = \"minbase\" }")),
              file() + ":4:10: missing required key 'suite' in [base] debian");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", variant = \"minibase\" }")),
              file() + ":4:42: [base] debian.variant: unknown variant \"minibase\" (expected "
                       "minbase, buildd, apt, essential, required, important, standard); did "
                       "you mean \"minbase\"?");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", variant = \"custom\" }")),
              file() + ":4:42: [base] debian.variant: unknown variant \"custom\" (expected "
                       "minbase, buildd, apt, essential, required, important, standard)");
    EXPECT_EQ(error(debian_base("{ suite = \"Bookworm\" }")),
              file() + ":4:20: [base] debian.suite: invalid suite \"Bookworm\": expected "
                       "[a-z0-9][a-z0-9-]* such as \"bookworm\" or \"stable\"");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", include = [\"git\", \"Make\"] }")),
              file() + ":4:50: [base] debian.include: invalid package name \"Make\": expected "
                       "[a-z0-9][a-z0-9+.-]+ (Debian policy 5.6.1)");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", include = \"git\" }")),
              file() + ":4:42: [base] debian.include: expected an array of strings, got a string "
                       "(write include = [\"ca-certificates\"])");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", mirror = \"ftp://ftp.debian.org\" }")),
              file() + ":4:41: [base] debian.mirror: invalid mirror \"ftp://ftp.debian.org\": "
                       "expected an http:// or https:// URL such as "
                       "\"http://deb.debian.org/debian\"");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", components = [\"main\", \"main\"] }")),
              file() + ":4:54: [base] debian.components: duplicate component \"main\"");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", components = [] }")),
              file() + ":4:45: [base] debian.components: needs at least one component");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", architecture = \"x86_64\" }")),
              file() + ":4:47: [base] debian.architecture: unknown architecture \"x86_64\" "
                       "(expected a Debian architecture such as \"amd64\" or \"arm64\"); did "
                       "you mean \"amd64\"?");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", architecture = \"arm64\" }")),
              file() + ":4:47: [base] debian.architecture: \"arm64\" is not the image's "
                       "platform linux/amd64 (set [image] platform to change it)");
    EXPECT_EQ(error(debian_base("{ suite = \"bookworm\", suit = \"x\" }")),
              file() + ":4:32: unknown key 'suit' in [base] debian; did you mean 'suite'?");
    EXPECT_EQ(
        error("base = { debian = { suite = \"sid\" } }\n" + image + "platform = \"linux/arm\"\n"),
        file() + ":1:19: [base] debian: the image's platform linux/arm has no Debian "
                 "architecture; set [image] platform");
    EXPECT_EQ(error(debian_base("\"bookworm\"")),
              file() + ":4:10: [base] debian: expected a table, got a string");
}

// --- [shell] ---------------------------------------------------------------------------------

TEST_F(RecipeParser, ShellErrors) {
    std::string recipe = "base = \"scratch\"\n" + image + "[shell]\n";
    EXPECT_EQ(error(recipe + "volumes = { \"../x\" = \"/x\" }\n"),
              file() + ":5:13: [shell] volumes: invalid volume name '../x' (expected "
                       "[A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\")");
    EXPECT_EQ(error(recipe + "volumes = { a = \"x\" }\n"),
              file() + ":5:17: [shell] volumes.a: must be an absolute path: \"x\"");
    EXPECT_EQ(error(recipe + "volumes = { a = \"/x\", b = \"/x/\" }\n"),
              file() + ":5:27: [shell] volumes.b: another volume is mounted at \"/x\"");
    EXPECT_EQ(error(recipe + "env_passthrough = [\"SSH-AUTH-SOCK\"]\n"),
              file() + ":5:20: [shell] env_passthrough: invalid variable name "
                       "\"SSH-AUTH-SOCK\": expected [A-Za-z_][A-Za-z0-9_]*");
    EXPECT_EQ(error(recipe + "env_passthrough = [\"A\", \"A\"]\n"),
              file() + ":5:25: [shell] env_passthrough: duplicate variable \"A\"");
    EXPECT_EQ(error(recipe + "hostname = \"dev_box\"\n"),
              file() + ":5:12: [shell] hostname: invalid host name \"dev_box\": expected "
                       "letters, digits and '-' in labels of at most 63 characters joined by "
                       "'.' (RFC 1123)");
    EXPECT_EQ(error(recipe + "home = \"tmp\"\n"),
              file() + ":5:8: [shell] home: unknown home \"tmp\" (expected \"persistent\" or "
                       "\"host\")");
    EXPECT_EQ(error(recipe + "volume = {}\n"),
              file() + ":5:1: unknown key 'volume' in [shell]; did you mean 'volumes'?");
    EXPECT_EQ(error(recipe + "base = \"scratch\"\n"),
              file() + ":5:1: unknown key 'base' in [shell]; a top-level key must come before "
                       "the first [table] header");
}

TEST_F(RecipeParser, BaseStageUnknown) {
    EXPECT_EQ(error("base = \"stage:biulder\"\n" + image + "[stage.builder]\n"),
              file() + ":1:8: base: unknown stage 'biulder'; did you mean 'builder'?");
    EXPECT_EQ(error(image + "[stage.a]\nbase = { stage = \"zzz\" }\n[stage.b]\n"),
              file() + ":4:18: [stage.a.base] stage: unknown stage 'zzz' (declared: a, b)");
}

// --- stages -----------------------------------------------------------------------------------

TEST_F(RecipeParser, StageCycle) {
    EXPECT_EQ(error(image + R"(
[stage.a]
base = "stage:b"
[stage.b]
base = "scratch"
[[stage.b.step]]
copy = { from = "c", src = "x", dest = "/x" }
[stage.c]
base = "stage:a"
)"),
              file() + ":11:8: stages form a cycle: a -> b -> c -> a");
    EXPECT_EQ(error("base = \"stage:main\"\n" + image),
              file() + ":1:8: stages form a cycle: main -> main");
}

TEST_F(RecipeParser, BadStageNames) {
    EXPECT_EQ(error(image + "[stage.Build]\n"),
              file() + ":3:8: invalid stage name 'Build' (expected [a-z0-9][a-z0-9_-]*, at most "
                       "64 characters)");
    EXPECT_EQ(error("base = \"scratch\"\n" + image + "[stage.main]\n"),
              file() + ":4:8: stage name 'main' is reserved for the top-level stage ([base] and "
                       "[[step]])");
}

// --- [[step]] copy -------------------------------------------------------------------------

std::string copy_step(const std::string& item) {
    return image + "[[step]]\ncopy = " + item + "\n";
}

TEST_F(RecipeParser, SourceSteps) {
    Recipe r = load_text(image + R"(
[[step]]
git = { url = "https://example.com/r.git", ref = "v1", dest = "/src/r", submodules = true, keep_git = true, depth = 5, mtime = "commit" }
[[step]]
download = { url = "https://example.com/t.tar.gz", sha256 = "sha256:)" +
                         std::string(64, 'a') + R"(", dest = "/opt/t", extract = true }
[[step]]
download = { url = "https://example.com/tool", sha256 = ")" +
                         std::string(64, 'b') + R"(", dest = "/usr/bin/tool", mode = "0755" }
[[step]]
deps = { lockfile = ["package.json", "package-lock.json"], dest = "/app", run = "npm ci", cache = ["/root/.npm"], trust = "image" }
)");
    const auto& steps = r.stages.back().steps;
    ASSERT_EQ(steps.size(), 4u);
    ASSERT_EQ(steps[0].kind, StepKind::git);
    EXPECT_EQ(steps[0].git->url, "https://example.com/r.git");
    EXPECT_EQ(steps[0].git->ref, "v1");
    EXPECT_EQ(steps[0].git->dest, "/src/r");
    EXPECT_TRUE(steps[0].git->submodules);
    EXPECT_TRUE(steps[0].git->keep_git);
    EXPECT_EQ(steps[0].git->depth, 5);
    EXPECT_EQ(steps[0].git->mtime, GitStep::Mtime::commit);
    ASSERT_EQ(steps[1].kind, StepKind::download);
    EXPECT_EQ(steps[1].download->sha256, std::string(64, 'a'));
    EXPECT_TRUE(steps[1].download->extract);
    EXPECT_EQ(steps[2].download->mode, 0755u);
    ASSERT_EQ(steps[3].kind, StepKind::deps);
    EXPECT_EQ(steps[3].deps->lockfiles,
              (std::vector<std::string>{"package.json", "package-lock.json"}));
    EXPECT_EQ(steps[3].deps->run.script, "npm ci");
    EXPECT_EQ(steps[3].deps->run.workdir, "/app");
    EXPECT_EQ(steps[3].deps->run.trust, RunStep::Trust::image);
    ASSERT_EQ(steps[3].deps->run.cache.size(), 1u);
}

TEST_F(RecipeParser, SourceStepErrors) {
    EXPECT_EQ(error(image + "[[step]]\ngit = { url = \"https://x\" }\n"),
              file() + ":4:7: [[step]] git: needs dest");
    EXPECT_EQ(error(image + "[[step]]\ngit = { url = \"/x\", dest = \"/src\" }\n"),
              file() + ":4:15: [[step]] git.url: expected a URL starting with https://, http://, "
                       "git://, ssh://, file://, got \"/x\"");
    EXPECT_EQ(error(image + "[[step]]\ngit = { url = \"https://x\", dest = \"/s\", depth = 1 }\n"),
              file() + ":4:49: [[step]] git.depth: applies with keep_git = true only");
    EXPECT_EQ(
        error(image +
              "[[step]]\ndownload = { url = \"https://x/a\", sha256 = \"ab\", dest = \"/a\" }\n"),
        file() + ":4:44: [[step]] download.sha256: expected 64 lower-case hex digits, got \"ab\"");
    // A dest ending in '/' takes the URL's file name: one without is a recipe error, located.
    std::string sha = std::string(64, 'a');
    EXPECT_EQ(error(image + "[[step]]\ndownload = { url = \"http://127.0.0.1:8080/\", sha256 = \"" +
                    sha + "\", dest = \"/o/\" }\n"),
              file() + ":4:20: [[step]] download.url: the URL has no file name for dest \"/o/\" "
                       "to take; end dest with the file's name");
    EXPECT_EQ(error(image + "[[step]]\ndownload = { url = \"https://x/a/..?v=1\", sha256 = \"" +
                    sha + "\", dest = \"/o/\" }\n"),
              file() + ":4:20: [[step]] download.url: the URL has no file name for dest \"/o/\" "
                       "to take; end dest with the file's name");
    EXPECT_EQ(error(image + "[[step]]\ndeps = { lockfile = \"x\" }\n"),
              file() + ":4:8: [[step]] deps: needs dest");
    EXPECT_EQ(error(image +
                    "[[step]]\ndeps = { lockfile = \"../x\", dest = \"/app\", run = \"true\" }\n"),
              file() +
                  ":4:21: [[step]] deps.lockfile: \"../x\" must be a relative path to a file of "
                  "the context, without a glob or \"..\"");
    EXPECT_EQ(error(image + "[[step]]\ndeps = { lockfile = \"x\", dest = \"/app\", run = \"true\" "
                            "}\ncache = [\"/c\"]\n"),
              file() +
                  ":5:1: step option 'cache' applies to run steps only (a deps step takes them "
                  "inside deps = { … })");
    EXPECT_EQ(
        error(image + "[[step]]\ngit = { url = \"ssh://h/r\", dest = \"/s\", secret = \"t\" }\n"),
        file() + ":4:50: [[step]] git.secret: applies to https:// and http:// URLs (ssh uses "
                 "SSH_AUTH_SOCK)");
    EXPECT_EQ(error(image + "[[step]]\nrun = \"true\"\ntrust = \"x\"\n"),
              file() + ":5:9: [[step]] trust: expected \"host\" or \"image\", got \"x\"");
    EXPECT_EQ(error(image + "[[step]]\ncache = [\"/x\"]\n"),
              file() + ":3:1: [[step]]: needs one of copy, run, git, deps, download");
    EXPECT_EQ(error(image + "[[step]]\n"),
              file() + ":3:1: [[step]]: needs one of copy, run, git, deps, download");
}

TEST_F(RecipeParser, RelativeDest) {
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"app/\" }")),
              file() + ":4:28: [[step]] copy.dest: dest must be an absolute path: \"app/\"");
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"/a/../b\" }")),
              file() + ":4:28: [[step]] copy.dest: dest must not contain '..': \"/a/../b\"");
    EXPECT_EQ(error(copy_step("{ src = [\"a\", \"b\"], dest = \"/app\" }")),
              file() + ":4:35: [[step]] copy.dest: copying several sources needs a directory "
                       "dest ending in '/': \"/app\"");
}

TEST_F(RecipeParser, DotDotSrc) {
    EXPECT_EQ(error(copy_step("{ src = \"a/../../etc\", dest = \"/x\" }")),
              file() + ":4:16: [[step]] copy.src: src must be relative to the context: "
                       "\"a/../../etc\"");
    EXPECT_EQ(error(copy_step("[{ src = [\"ok\", \"..\"], dest = \"/x/\" }]")),
              file() + ":4:24: [[step]] copy.src: src must be relative to the context: \"..\"");
}

TEST_F(RecipeParser, AbsoluteSrc) {
    EXPECT_EQ(error(copy_step("{ src = \"/etc/passwd\", dest = \"/x\" }")),
              file() + ":4:16: [[step]] copy.src: src must be relative to the context: "
                       "\"/etc/passwd\"");
}

TEST_F(RecipeParser, BadSrc) {
    EXPECT_EQ(error(copy_step("{ src = \"\", dest = \"/x\" }")),
              file() + ":4:16: [[step]] copy.src: src must not be empty");
    EXPECT_EQ(error(copy_step("{ src = \"a[bc\", dest = \"/x\" }")),
              file() + ":4:16: [[step]] copy.src: unclosed '[' in pattern 'a[bc'");
    Recipe r = load_text(copy_step("{ src = ['a\\[b', '[]]x', 'lib/**/[!.]*.so'], dest = '/x/' }"));
    EXPECT_EQ(r.stages[0].steps[0].copy[0].src,
              (std::vector<std::string>{"a\\[b", "[]]x", "lib/**/[!.]*.so"}));
    EXPECT_EQ(error(copy_step("{ src = [], dest = \"/x\" }")),
              file() + ":4:16: [[step]] copy.src: needs at least one path");
    EXPECT_EQ(error(copy_step("{ dest = \"/x\" }")),
              file() + ":4:8: missing required key 'src' in [[step]] copy");
    EXPECT_EQ(error(copy_step("[]")), file() + ":4:8: [[step]] copy: needs at least one item");
}

TEST_F(RecipeParser, BadMode) {
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"/a\", mode = 755 }")),
              file() + ":4:41: [[step]] copy.mode: expected a string, got an integer (write "
                       "the mode in quotes, as octal digits: mode = \"0755\")");
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"/a\", mode = \"0855\" }")),
              file() + ":4:41: [[step]] copy.mode: invalid mode \"0855\": expected up to 4 "
                       "octal digits such as \"0755\"");
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"/a\", mode = \"07777\" }")),
              file() + ":4:41: [[step]] copy.mode: invalid mode \"07777\": expected up to 4 "
                       "octal digits such as \"0755\"");
    Recipe r = load_text(copy_step("{ src = \"a\", dest = \"/a\", mode = \"4755\" }"));
    EXPECT_EQ(r.stages[0].steps[0].copy[0].mode, 04755u);
}

TEST_F(RecipeParser, UidGidRange) {
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"/a\", uid = 2147483648 }")),
              file() + ":4:40: [[step]] copy.uid: 2147483648 is out of range (0 to 2147483647)");
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"/a\", gid = -1 }")),
              file() + ":4:40: [[step]] copy.gid: -1 is out of range (0 to 2147483647)");
    EXPECT_EQ(error(copy_step("{ src = \"a\", dest = \"/a\", uid = \"root\" }")),
              file() + ":4:40: [[step]] copy.uid: expected an integer, got a string");
    Recipe r = load_text(copy_step("{ src = \"a\", dest = \"/a\", uid = 2147483647, gid = 0 }"));
    EXPECT_EQ(r.stages[0].steps[0].copy[0].uid, 2147483647u);
    EXPECT_EQ(r.stages[0].steps[0].copy[0].gid, 0u);
}

TEST_F(RecipeParser, CopyFromUnknownStage) {
    EXPECT_EQ(error(copy_step("{ from = \"biulder\", src = \"a\", dest = \"/a\" }") +
                    "[stage.builder]\n"),
              file() + ":4:17: [[step]] copy.from: unknown stage 'biulder'; did you mean "
                       "'builder'?");
}

TEST_F(RecipeParser, CopyContexts) {
    EXPECT_EQ(error(copy_step("{ context = \"tols\", src = \"a\", dest = \"/a\" }") +
                    "[contexts]\ntools = \".\"\n"),
              file() + ":4:20: [[step]] copy.context: unknown context 'tols'; did you mean "
                       "'tools'?");
    EXPECT_EQ(error("base = \"scratch\"\n" + image + "[contexts]\ntools = \"../no-such-dir\"\n"),
              file() + ":5:9: [contexts] tools: \"../no-such-dir\" is not a directory (\"" +
                  (dir.path().parent_path() / "no-such-dir").string() + "\")");
    EXPECT_EQ(error(copy_step("{ context = \"t\", from = \"s\", src = \"a\", dest = \"/a\" }")),
              file() + ":4:20: [[step]] copy: 'from' and 'context' are exclusive: a copy reads "
                       "another stage or a context");
}

// --- [config] ---------------------------------------------------------------------------------

std::string config(const std::string& body) {
    return "base = \"scratch\"\n" + image + "[config]\n" + body + "\n";
}

TEST_F(RecipeParser, BadPort) {
    EXPECT_EQ(error(config("ports = [\"80\", \"70000\"]")),
              file() + ":5:16: [config] ports: invalid port \"70000\": expected \"N\" or "
                       "\"N/PROTO\" with N in 1..65535 and PROTO tcp, udp or sctp");
    EXPECT_EQ(error(config("ports = [\"53/icmp\"]")),
              file() + ":5:10: [config] ports: invalid port \"53/icmp\": expected \"N\" or "
                       "\"N/PROTO\" with N in 1..65535 and PROTO tcp, udp or sctp");
    EXPECT_EQ(error(config("ports = [0]")),
              file() + ":5:10: [config] ports: invalid port \"0\": expected \"N\" or "
                       "\"N/PROTO\" with N in 1..65535 and PROTO tcp, udp or sctp");
    EXPECT_EQ(load_text(config("ports = [\"80\", \"80/tcp\"]")).stages[0].config.exposed_ports,
              (std::vector<std::string>{"80/tcp"}));
}

TEST_F(RecipeParser, BadConfig) {
    EXPECT_EQ(error(config("entrypoint = \"/bin/sh -c x\"")),
              file() + ":5:14: [config] entrypoint: expected an array of strings, got a string "
                       "(write entrypoint = [\"/bin/sh\", \"-c\", \"…\"] to run a command line "
                       "through a shell)");
    EXPECT_EQ(error(config("workdir = \"app\"")),
              file() + ":5:11: [config] workdir: must be an absolute path: \"app\"");
    EXPECT_EQ(error(config("volumes = [\"/data/../etc\"]")),
              file() + ":5:12: [config] volumes: must not contain '..': \"/data/../etc\"");
    EXPECT_EQ(error(config("user = \"0:2147483648\"")),
              file() + ":5:8: [config] user: invalid user \"0:2147483648\": expected "
                       "\"uid[:gid]\" or \"name[:group]\" with numeric ids below 2^31");
    EXPECT_EQ(error(config("stop_signal = \"TERM\"")),
              file() + ":5:15: [config] stop_signal: invalid signal \"TERM\": expected a name "
                       "such as \"SIGTERM\" or a number 1..64; did you mean \"SIGTERM\"?");
    EXPECT_EQ(error(config("env = { \"A=B\" = \"x\" }")),
              file() + ":5:9: [config] env: invalid variable name \"A=B\" (it must be non-empty "
                       "and contain no '=')");
    EXPECT_EQ(error(config("env = { A = 1 }")),
              file() + ":5:13: [config] env.A: expected a string, got an integer");
}

TEST_F(RecipeParser, ConfigValues) {
    Recipe r = load_text(config("user = \"app:staff\"\nstop_signal = 9\nentrypoint = []\n"
                                "[config.env]\nZ = \"1\"\nA = \"2\"\n"));
    const auto& c = r.stages[0].config;
    EXPECT_EQ(c.user, "app:staff");
    EXPECT_EQ(c.stop_signal, "9");
    ASSERT_TRUE(c.entrypoint); // an empty entrypoint clears the base image's
    EXPECT_TRUE(c.entrypoint->empty());
    EXPECT_FALSE(c.cmd);
    EXPECT_EQ(c.env, (std::vector<std::pair<std::string, std::string>>{{"Z", "1"}, {"A", "2"}}));
}

// --- files and limits ---------------------------------------------------------------------

TEST_F(RecipeParser, MissingFile) {
    fs::path missing = dir / "missing.toml";
    try {
        load(missing, options);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::usage);
        EXPECT_EQ(std::string(e.what()),
                  "cannot read recipe " + missing.string() + ": No such file or directory");
    }
}

TEST_F(RecipeParser, RelativePathInMessages) {
    write("recipe.toml", image + "epoch = \"0\"\n");
    auto cwd = fs::current_path();
    fs::current_path(dir.path());
    try {
        load("recipe.toml", options);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "recipe.toml:3:9: [image] epoch: expected an integer, got a string");
    }
    fs::current_path(cwd);
}

TEST_F(RecipeParser, TooLarge) {
    std::string text = "base = \"scratch\"\n" + image + std::string(1 << 20, '#');
    EXPECT_EQ(error(text), file() + ": recipe is larger than 1 MiB");
}

TEST_F(RecipeParser, DeepNestingIsRejectedNotCrashed) {
    // toml++ itself would overflow the stack on this (it caps arrays, not dotted keys).
    std::string key;
    for (int i = 0; i < 200000; ++i)
        key += "a.";
    EXPECT_EQ(error(key + "a = 1\n"),
              file() + ":1:128: tables and arrays nest more than 64 levels deep");
    EXPECT_EQ(error("x = " + std::string(300, '[') + "\n"),
              file() + ":1:69: tables and arrays nest more than 64 levels deep");
    // Brackets in strings and comments don't count.
    Recipe r = load_text("base = \"scratch\"\n" + image + "# " + std::string(100, '[') +
                         "\n[image.annotations]\nx = '''" + std::string(100, '{') + "'''\n");
    EXPECT_EQ(r.annotations.at("x"), std::string(100, '{'));
}

TEST_F(RecipeParser, ParseInMemory) {
    Recipe r = parse("base = \"scratch\"\n" + image, dir / "virtual.toml", options);
    EXPECT_EQ(r.file, dir / "virtual.toml");
    EXPECT_EQ(r.context, dir.path());
    try {
        parse("[image]\nname = 1\n", "some/where.toml", options);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "some/where.toml:2:8: [image] name: expected a string, got an integer");
    }
}

TEST(RecipeLocation, Str) {
    EXPECT_EQ((Location{"a.toml", 3, 7}).str(), "a.toml:3:7");
    EXPECT_EQ((Location{"a.toml", 0, 0}).str(), "a.toml");
}

} // namespace
} // namespace factory::recipe
