// RUN steps in recipes: `run` and its options (shell, env, user, workdir, network, cache,
// secret) → the RunStep model, ${ARG} expansion in run strings, and every error → its exact
// message at file:line:col.
#include "factory/recipe/parser.hpp"
#include "factory/util/error.hpp"
#include "tests/unit/test_dir.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <string>

namespace factory::recipe {
namespace {

namespace fs = std::filesystem;
using Env = std::vector<std::pair<std::string, std::string>>;
using Strings = std::vector<std::string>;

class RecipeRun : public ::testing::Test {
  protected:
    RecipeRun() { options.host_architecture = "amd64"; }

    std::string file() const { return (dir / "recipe.toml").string(); }

    Recipe load_text(const std::string& text) {
        fs::path path = dir / "recipe.toml";
        std::ofstream(path, std::ios::binary) << text;
        return load(path, options);
    }
    // The steps of the top-level stage of "[image]…[[step]]\n" + `step`.
    RunStep run(const std::string& step) {
        Recipe r = load_text(header + step);
        const Step& s = r.stages.at(0).steps.at(0);
        EXPECT_EQ(s.kind, StepKind::run);
        EXPECT_TRUE(s.copy.empty());
        if (!s.run) throw std::runtime_error("no run");
        return *s.run;
    }
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
    // The error of a step written on line 4 (after the 3-line header).
    std::string step_error(const std::string& step) { return error(header + step); }

    const std::string header = "[image]\nname = \"hello\"\n[[step]]\n";
    testing::TestDir dir;
    LoadOptions options;
};

TEST_F(RecipeRun, FullRecipeWithEveryNewKey) {
    options.args = {{"VERSION", "2.0"}};
    Recipe r = load_text(R"([image]
name = "ci-agent"
platform = "linux/arm64"

[args]
VERSION = "1.0"
SUITE = "bookworm"

[base]
debian = { suite = "${SUITE}", variant = "minbase", include = ["git", "ca-certificates", "git"], mirror = "https://deb.debian.org/debian", components = ["main", "contrib"] }

[[step]]
run = "apt-get update && apt-get install -y --no-install-recommends git make gcc"
shell = ["/bin/bash", "-euo", "pipefail", "-c"]
env = { DEBIAN_FRONTEND = "noninteractive", V = "${VERSION}" }
user = "0:0"
workdir = "/src"
network = false
cache = ["/var/cache/apt", "/var/lib/apt/lists/", { target = "/root/.npm", id = "npm", sharing = "locked" }]
secret = [{ id = "npmrc", target = "/root/.npmrc" }, { id = "token", env = "TOKEN" }]

[[step]]
run = ["/usr/bin/make", "-C", "/src", "VERSION=${VERSION}"]

[config]
user = "1000:1000"

[shell]
volumes = { npm-cache = "/home/dev/.npm/", "go.mod" = "/go/pkg" }
env_passthrough = ["SSH_AUTH_SOCK", "http_proxy", "no_proxy"]
hostname = "dev"
home = "host"
)");
    ASSERT_EQ(r.stages.size(), 1u);
    const Stage& main = r.stages[0];
    EXPECT_EQ(main.base.kind, Base::Kind::debian);
    EXPECT_EQ(main.base.where.str(), file() + ":10:10");
    const DebianBase& d = main.base.debian;
    EXPECT_EQ(d.suite, "bookworm");
    EXPECT_EQ(d.variant, "minbase");
    EXPECT_EQ(d.include, (Strings{"ca-certificates", "git"})); // sorted, no repeats
    EXPECT_EQ(d.mirror, "https://deb.debian.org/debian");
    EXPECT_EQ(d.components, (Strings{"main", "contrib"}));
    EXPECT_EQ(d.architecture, "arm64"); // the image's platform

    ASSERT_EQ(main.steps.size(), 2u);
    EXPECT_EQ(main.steps[0].kind, StepKind::run);
    EXPECT_EQ(main.steps[0].where.str(), file() + ":12:1");
    const RunStep& a = *main.steps[0].run;
    EXPECT_EQ(a.where.str(), file() + ":13:7");
    EXPECT_EQ(a.form, RunStep::Form::shell);
    EXPECT_EQ(a.script,
              "apt-get update && apt-get install -y --no-install-recommends git make gcc");
    EXPECT_TRUE(a.exec.empty());
    EXPECT_EQ(a.shell, (Strings{"/bin/bash", "-euo", "pipefail", "-c"}));
    EXPECT_EQ(a.argv(), (Strings{"/bin/bash", "-euo", "pipefail", "-c", a.script}));
    EXPECT_EQ(a.env, (Env{{"DEBIAN_FRONTEND", "noninteractive"}, {"V", "2.0"}}));
    EXPECT_EQ(a.user, "0:0");
    EXPECT_EQ(a.workdir, "/src");
    EXPECT_FALSE(a.network);
    ASSERT_EQ(a.cache.size(), 3u);
    EXPECT_EQ(a.cache[0].id, "/var/cache/apt"); // the target when no id is written
    EXPECT_EQ(a.cache[0].target, "/var/cache/apt");
    EXPECT_EQ(a.cache[0].where.str(), file() + ":19:10");
    EXPECT_EQ(a.cache[1].id, "/var/lib/apt/lists"); // normalized
    EXPECT_EQ(a.cache[1].target, "/var/lib/apt/lists");
    EXPECT_EQ(a.cache[2].id, "npm");
    EXPECT_EQ(a.cache[2].target, "/root/.npm");
    EXPECT_EQ(a.cache[2].sharing, CacheMount::Sharing::locked);
    EXPECT_EQ(a.cache[2].where.str(), file() + ":19:51");
    ASSERT_EQ(a.secrets.size(), 2u);
    EXPECT_EQ(a.secrets[0].id, "npmrc");
    EXPECT_EQ(a.secrets[0].target, "/root/.npmrc");
    EXPECT_EQ(a.secrets[0].env, "");
    EXPECT_EQ(a.secrets[0].where.str(), file() + ":20:11");
    EXPECT_EQ(a.secrets[1].id, "token");
    EXPECT_EQ(a.secrets[1].target, "");
    EXPECT_EQ(a.secrets[1].env, "TOKEN");

    const RunStep& b = *main.steps[1].run;
    EXPECT_EQ(b.form, RunStep::Form::exec);
    EXPECT_EQ(b.exec, (Strings{"/usr/bin/make", "-C", "/src", "VERSION=2.0"}));
    EXPECT_EQ(b.argv(), b.exec);
    EXPECT_EQ(b.shell, (Strings{"/bin/sh", "-c"})); // unused by the exec form
    EXPECT_TRUE(b.env.empty());
    EXPECT_EQ(b.user, "");    // unset: the base's config decides
    EXPECT_EQ(b.workdir, ""); // likewise
    EXPECT_TRUE(b.network);
    EXPECT_TRUE(b.cache.empty());
    EXPECT_TRUE(b.secrets.empty());

    EXPECT_EQ(r.shell.where.str(), file() + ":28:1");
    EXPECT_EQ(r.shell.volumes, (std::map<std::string, std::string>{
                                   {"go.mod", "/go/pkg"}, {"npm-cache", "/home/dev/.npm"}}));
    EXPECT_EQ(r.shell.env_passthrough, (Strings{"SSH_AUTH_SOCK", "http_proxy", "no_proxy"}));
    EXPECT_EQ(r.shell.hostname, "dev");
    EXPECT_EQ(r.shell.home, ShellConfig::Home::host);
}

TEST_F(RecipeRun, Defaults) {
    RunStep s = run("run = \"make\"\n");
    EXPECT_EQ(s.form, RunStep::Form::shell);
    EXPECT_EQ(s.argv(), (Strings{"/bin/sh", "-c", "make"}));
    EXPECT_TRUE(s.network);
    EXPECT_EQ(s.user, "");
    EXPECT_EQ(s.workdir, "");
    EXPECT_TRUE(s.env.empty());
    EXPECT_TRUE(s.cache.empty());
    EXPECT_TRUE(s.secrets.empty());

    Recipe r = load_text(header + "run = \"make\"\n");
    EXPECT_EQ(r.shell.where.line, 0); // no [shell]: the defaults
    EXPECT_TRUE(r.shell.volumes.empty());
    EXPECT_TRUE(r.shell.env_passthrough.empty());
    EXPECT_EQ(r.shell.hostname, "");
    EXPECT_EQ(r.shell.home, ShellConfig::Home::persistent);
}

TEST_F(RecipeRun, OneCacheOrSecretWithoutArray) {
    RunStep s = run("run = \"x\"\ncache = \"/root/.cache//pip/\"\nsecret = { id = \"a.b_c-1\", "
                    "env = \"_X1\" }\n");
    ASSERT_EQ(s.cache.size(), 1u);
    EXPECT_EQ(s.cache[0].target, "/root/.cache/pip");
    EXPECT_EQ(s.cache[0].id, "/root/.cache/pip");
    ASSERT_EQ(s.secrets.size(), 1u);
    EXPECT_EQ(s.secrets[0].id, "a.b_c-1");
    EXPECT_EQ(s.secrets[0].env, "_X1");
    s = run("run = \"x\"\ncache = { target = \"/a\", id = \"A\" }\n");
    ASSERT_EQ(s.cache.size(), 1u);
    EXPECT_EQ(s.cache[0].id, "A");
}

// --- ${ARG} in run strings -------------------------------------------------------------------

TEST_F(RecipeRun, ArgsInRunStringsLeaveTheShellItsVariables) {
    std::string args = "[args]\nVERSION = \"1.0\"\n";
    Recipe r = load_text(
        "[image]\nname = \"hello\"\n" + args +
        "[[step]]\nrun = 'echo ${VERSION} ${HOME} $HOME ${A:-x} $${VERSION} $$ ${ ${VERSON}'\n"
        "[[step]]\nrun = ['/bin/echo', '${VERSION}', '${PATH}', '$${VERSION}']\n");
    // A declared arg is replaced; everything else is the shell's; $${ is a literal ${.
    EXPECT_EQ(r.stages[0].steps[0].run->script,
              "echo 1.0 ${HOME} $HOME ${A:-x} ${VERSION} $$ ${ ${VERSON}");
    EXPECT_EQ(r.stages[0].steps[1].run->exec,
              (Strings{"/bin/echo", "1.0", "${PATH}", "${VERSION}"}));
}

TEST_F(RecipeRun, OtherRunKeysExpandStrictly) {
    EXPECT_EQ(step_error("run = \"make\"\nenv = { PATH = \"${PATH}:/opt/bin\" }\n"),
              file() + ":5:16: [[step]] env.PATH: unknown arg ${PATH} (declared: none)");
    EXPECT_EQ(step_error("run = \"make\"\nworkdir = \"${DIR}\"\n"),
              file() + ":5:11: [[step]] workdir: unknown arg ${DIR} (declared: none)");
    EXPECT_EQ(step_error("run = \"make\"\nshell = [\"${SHELL}\", \"-c\"]\n"),
              file() + ":5:10: [[step]] shell: unknown arg ${SHELL} (declared: none)");
}

// --- errors ------------------------------------------------------------------------------------

TEST_F(RecipeRun, RunOfTheWrongType) {
    EXPECT_EQ(step_error("run = 42\n"),
              file() + ":4:7: [[step]] run: expected a string or an array of strings, got an "
                       "integer (a string runs with the shell, an array runs the program "
                       "directly)");
    EXPECT_EQ(step_error("run = [\"make\", 1]\n"),
              file() + ":4:16: [[step]] run: expected a string, got an integer");
    EXPECT_EQ(step_error("run = \"  \"\n"), file() + ":4:7: [[step]] run: the command is empty");
    EXPECT_EQ(step_error("run = []\n"),
              file() + ":4:7: [[step]] run: needs at least the program to run");
    EXPECT_EQ(step_error("run = [\"\", \"x\"]\n"),
              file() + ":4:7: [[step]] run: the program is an empty string");
}

TEST_F(RecipeRun, BadShell) {
    EXPECT_EQ(step_error("run = \"make\"\nshell = \"/bin/bash -c\"\n"),
              file() + ":5:9: [[step]] shell: expected an array of strings, got a string (write "
                       "shell = [\"/bin/bash\", \"-euc\"])");
    EXPECT_EQ(step_error("run = \"make\"\nshell = []\n"),
              file() + ":5:9: [[step]] shell: needs at least the program to run");
    EXPECT_EQ(step_error("run = [\"make\"]\nshell = [\"/bin/bash\", \"-c\"]\n"),
              file() + ":5:9: [[step]] shell: applies to a string run only; an array run starts "
                       "its program without a shell");
}

TEST_F(RecipeRun, NetworkAsString) {
    EXPECT_EQ(step_error("run = \"make\"\nnetwork = \"false\"\n"),
              file() + ":5:11: [[step]] network: expected a boolean, got a string");
}

TEST_F(RecipeRun, RelativeWorkdirAndBadUser) {
    EXPECT_EQ(step_error("run = \"make\"\nworkdir = \"src\"\n"),
              file() + ":5:11: [[step]] workdir: must be an absolute path: \"src\"");
    EXPECT_EQ(step_error("run = \"make\"\nworkdir = \"/src/../..\"\n"),
              file() + ":5:11: [[step]] workdir: must not contain '..': \"/src/../..\"");
    EXPECT_EQ(step_error("run = \"make\"\nuser = \"dev user\"\n"),
              file() + ":5:8: [[step]] user: invalid user \"dev user\": expected \"uid[:gid]\" or "
                       "\"name[:group]\" with numeric ids below 2^31");
    EXPECT_EQ(step_error("run = \"make\"\nuser = 0\n"),
              file() + ":5:8: [[step]] user: expected a string, got an integer");
}

TEST_F(RecipeRun, BadEnv) {
    EXPECT_EQ(step_error("run = \"make\"\nenv = { \"A=B\" = \"x\" }\n"),
              file() + ":5:9: [[step]] env: invalid variable name \"A=B\" (it must be non-empty "
                       "and contain no '=')");
    EXPECT_EQ(step_error("run = \"make\"\nenv = { A = true }\n"),
              file() + ":5:13: [[step]] env.A: expected a string, got a boolean");
}

TEST_F(RecipeRun, UnknownKeyInARunStep) {
    EXPECT_EQ(step_error("run = \"make\"\nnetwrok = false\n"),
              file() + ":5:1: unknown key 'netwrok' in [[step]]; did you mean 'network'?");
    EXPECT_EQ(step_error("run = \"make\"\nsecrets = { id = \"a\", env = \"A\" }\n"),
              file() + ":5:1: unknown key 'secrets' in [[step]]; did you mean 'secret'?");
    EXPECT_EQ(step_error("run = \"make\"\ncache = [{ target = \"/a\", sharng = \"locked\" }]\n"),
              file() + ":5:27: unknown key 'sharng' in [[step]] cache; did you mean 'sharing'?");
    EXPECT_EQ(step_error("run = \"make\"\nsecret = { id = \"a\", trget = \"/a\" }\n"),
              file() + ":5:22: unknown key 'trget' in [[step]] secret; did you mean 'target'?");
}

TEST_F(RecipeRun, StepKindsAndOptions) {
    EXPECT_EQ(step_error("run = \"make\"\ncopy = { src = \"a\", dest = \"/a\" }\n"),
              file() + ":5:1: [[step]]: has both 'run' and 'copy'; a step does one thing");
    EXPECT_EQ(step_error("copy = { src = \"a\", dest = \"/a\" }\nnetwork = false\n"),
              file() + ":5:1: step option 'network' applies to run steps only");
    EXPECT_EQ(step_error("copy = { src = \"a\", dest = \"/a\" }\ncache = [\"/x\"]\n"),
              file() + ":5:1: step option 'cache' applies to run steps only");
    EXPECT_EQ(step_error("network = false\n"),
              file() + ":3:1: [[step]]: needs one of copy, run, git, deps, download");
    // In a named stage the labels name it.
    EXPECT_EQ(error("[image]\nname = \"hello\"\n[stage.b]\n[[stage.b.step]]\nrun = 1\n"),
              file() + ":5:7: [[stage.b.step]] run: expected a string or an array of strings, "
                       "got an integer (a string runs with the shell, an array runs the program "
                       "directly)");
}

TEST_F(RecipeRun, BadCacheMounts) {
    EXPECT_EQ(step_error("run = \"x\"\ncache = [{ target = \"/root/.npm\", id = \"..\" }]\n"),
              file() + ":5:40: [[step]] cache.id: invalid cache id \"..\": expected "
                       "[A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\"");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [{ target = \"/a\", id = \"npm/../../etc\" }]\n"),
              file() + ":5:32: [[step]] cache.id: invalid cache id \"npm/../../etc\": expected "
                       "[A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\"");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [{ target = \"/a\", id = \"a..b\" }]\n"),
              file() + ":5:32: [[step]] cache.id: invalid cache id \"a..b\": expected "
                       "[A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\"");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [\"var/cache/apt\"]\n"),
              file() + ":5:10: [[step]] cache: must be an absolute path: \"var/cache/apt\"");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [\"/var/../etc\"]\n"),
              file() + ":5:10: [[step]] cache: must not contain '..': \"/var/../etc\"");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [\"//\"]\n"),
              file() + ":5:10: [[step]] cache: can't mount over the root: \"//\"");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [\"/a\", { target = \"/a/\", id = \"b\" }]\n"),
              file() + ":5:16: [[step]] cache: \"/a\" is mounted twice in this step");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [{ target = \"/a\", id = \"c\" }, { target = "
                         "\"/b\", id = \"c\" }]\n"),
              file() + ":5:39: [[step]] cache: cache id \"c\" is used twice in this step");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [{ id = \"npm\" }]\n"),
              file() + ":5:10: missing required key 'target' in [[step]] cache");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [{ target = \"/a\", sharing = \"shared\" }]\n"),
              file() + ":5:37: [[step]] cache.sharing: sharing \"shared\" is not supported in "
                       "this version (only \"locked\")");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [{ target = \"/a\", sharing = \"lock\" }]\n"),
              file() + ":5:37: [[step]] cache.sharing: unknown sharing \"lock\" (expected "
                       "\"locked\")");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [1]\n"),
              file() + ":5:10: [[step]] cache: expected a path or a table, got an integer "
                       "(write cache = [\"/var/cache/apt\"] or cache = [{ target = \"/root/.npm\", "
                       "id = \"npm\" }])");
    EXPECT_EQ(step_error("run = \"x\"\ncache = []\n"),
              file() + ":5:9: [[step]] cache: needs at least one item");
}

TEST_F(RecipeRun, BadSecrets) {
    EXPECT_EQ(step_error("run = \"x\"\nsecret = { id = \"t\", target = \"/t\", env = \"T\" }\n"),
              file() + ":5:43: [[step]] secret: 'target' and 'env' are exclusive: a secret is a "
                       "file or a variable (write two secrets for both)");
    EXPECT_EQ(step_error("run = \"x\"\nsecret = { id = \"t\" }\n"),
              file() + ":5:10: [[step]] secret: needs 'target' (a file to mount) or 'env' (a "
                       "variable to set)");
    EXPECT_EQ(step_error("run = \"x\"\nsecret = { env = \"T\" }\n"),
              file() + ":5:10: missing required key 'id' in [[step]] secret");
    EXPECT_EQ(step_error("run = \"x\"\nsecret = { id = \"../t\", env = \"T\" }\n"),
              file() + ":5:17: [[step]] secret.id: invalid secret id \"../t\": expected "
                       "[A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\"");
    EXPECT_EQ(step_error("run = \"x\"\nsecret = { id = \"t\", target = \"t\" }\n"),
              file() + ":5:31: [[step]] secret.target: must be an absolute path: \"t\"");
    EXPECT_EQ(step_error("run = \"x\"\nsecret = { id = \"t\", env = \"1T\" }\n"),
              file() + ":5:28: [[step]] secret.env: invalid variable name \"1T\": expected "
                       "[A-Za-z_][A-Za-z0-9_]*");
    EXPECT_EQ(step_error("run = \"x\"\nsecret = \"npmrc\"\n"),
              file() + ":5:10: [[step]] secret: expected a table or an array of tables, got a "
                       "string");
    EXPECT_EQ(step_error("run = \"x\"\nsecret = [\"npmrc\"]\n"),
              file() + ":5:11: [[step]] secret: expected a table, got a string");
    EXPECT_EQ(step_error("run = \"x\"\ncache = [\"/root/.npmrc\"]\nsecret = { id = \"n\", "
                         "target = \"/root/.npmrc\" }\n"),
              file() + ":6:10: [[step]] secret: \"/root/.npmrc\" is mounted twice in this step");
    EXPECT_EQ(step_error("run = \"x\"\nenv = { T = \"1\" }\nsecret = { id = \"t\", env = \"T\" "
                         "}\n"),
              file() + ":6:10: [[step]] secret: variable T is already set by this step's env "
                       "or another secret");
}

} // namespace
} // namespace factory::recipe
