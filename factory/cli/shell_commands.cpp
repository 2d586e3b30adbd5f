#include "factory/cli/shell_commands.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cache/root.hpp"
#include "factory/cli/commands.hpp"
#include "factory/util/progress.hpp"

namespace factory::cli {

namespace {

// A recipe target is built as `factory build` builds it: from the registry caches given, with
// the registry options (docs/shell.md).
void add_cache_from(CLI::App& cmd, std::vector<std::string>& cache_from, RegistryFlags& flags) {
    cmd.add_option("--cache-from", cache_from,
                   "Build a recipe target with the registry cache docker://HOST/REPO:TAG too "
                   "(repeatable, as factory build --cache-from)")
        ->allow_extra_args(false);
    add_registry_flags(cmd, flags, JobsFlag::no);
}

} // namespace

ShellCommands::ShellCommands(CLI::App& app, std::string& cache_dir) {
    run_ = app.add_subcommand("run", "Run a command in an image (or a recipe's, built first); "
                                     "changes are discarded");
    run_->add_option("--cache", cache_dir, "Store directory");
    run_->add_option("target", run_options_.target, "NAME[:TAG], sha256:DIGEST or RECIPE.toml")
        ->required();
    run_->add_option("cmd", run_options_.args, "The command (after --); default: Entrypoint + Cmd");
    run_->add_option("--mount", run_options_.mounts, "Bind-mount SRC:DST[:ro]")
        ->allow_extra_args(false);
    run_->add_option("--env,-e", run_options_.env, "Set NAME=VALUE")->allow_extra_args(false);
    run_->add_option("--workdir,-w", run_options_.workdir, "Working directory in the container");
    run_->add_option("--user,-u", run_options_.user, "UID[:GID] (default: the image's User)");
    run_->add_option("--network", run_options_.network, "host (default) or none");
    run_->add_flag("--interactive,-i", run_options_.interactive,
                   "Pass stdin to the command (default: /dev/null)");
    run_->add_option("--arg", run_args_, "Set a recipe [args] value: NAME=VALUE")
        ->allow_extra_args(false);
    run_->add_option("--runtime", run_options_.runtime,
                     "OCI runtime: crun, runc or a path (default: $FACTORY_RUNTIME, else detect)");
    run_->add_option("--stop-timeout", run_options_.stop_timeout,
                     "Seconds the command has after a SIGTERM before it is killed (default: 10)")
        ->check(CLI::NonNegativeNumber);
    add_cache_from(*run_, run_options_.build.cache_from, run_registry_);

    shell_ = app.add_subcommand("shell", "An interactive shell (or a command) in a recipe's "
                                         "image or a store image, with the project mounted");
    shell_->add_option("--cache", cache_dir, "Store directory");
    shell_
        ->add_option("target", shell_options_.target,
                     "RECIPE.toml, NAME[:TAG] or sha256:DIGEST (with --stop: also an "
                     "environment's name)")
        ->required();
    shell_->add_option("cmd", shell_options_.args, "The command (after --); default: a shell");
    shell_->add_option("--project", shell_options_.project,
                       "Project directory mounted at its own path (default: the recipe's git "
                       "top level, or the current directory for an image)");
    shell_->add_flag("--root", shell_options_.root, "Run as root instead of the caller");
    shell_->add_option("--home", shell_options_.home,
                       "persistent (a HOME kept in the store per environment) or host");
    shell_->add_option("--arg", shell_args_, "Set a recipe [args] value: NAME=VALUE")
        ->allow_extra_args(false);
    shell_->add_option("--runtime", shell_options_.runtime,
                       "OCI runtime of a new environment: crun, runc or a path (default: "
                       "$FACTORY_RUNTIME, else crun where it can run, else runc; rootless: runc "
                       "first)");
    shell_->add_flag("--stop", stop_,
                     "End the running environment(s) of TARGET, with every shell in them");
    add_cache_from(*shell_, shell_options_.build.cache_from, shell_registry_);

    ps_ = app.add_subcommand("ps", "List the running shell environments");
    ps_->add_option("--cache", cache_dir, "Store directory");
    ps_->add_flag("--json", ps_json_, "One JSON object per environment");
}

namespace {

int run_ps(const std::filesystem::path& store_root, bool json) {
    if (!json)
        std::printf("%-24s %-32s %-6s %-5s %s\n", "NAME", "IMAGE", "SHELLS", "UP", "PROJECT");
    for (const auto& env : shell::list_environments(store_root)) {
        if (json) {
            nlohmann::json j;
            j["name"] = env.name;
            j["id"] = env.id;
            j["image"] = env.image;
            j["digest"] = env.digest;
            j["target"] = env.target;
            j["project"] = env.project;
            j["uid"] = env.uid;
            j["shells"] = env.shells;
            j["runtime"] = env.runtime;
            j["container"] = env.container;
            j["pid"] = env.init_pid;
            j["created"] = env.created;
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%-24s %-32s %-6d %-5s %s\n", env.name.c_str(), env.image.c_str(),
                        env.shells, human_duration(::time(nullptr) - env.created).c_str(),
                        env.project.c_str());
        }
    }
    return 0;
}

} // namespace

bool ShellCommands::parsed() const {
    return run_->parsed() || shell_->parsed() || ps_->parsed();
}

std::optional<int> ShellCommands::dispatch(const std::string& cache_dir) {
    if (run_->parsed()) {
        run_options_.store_root = cache::store_root(cache_dir);
        run_options_.build_args = parse_args(run_args_);
        run_options_.build.registry.client =
            registry_client_options(run_registry_, nullptr, every_registry);
        return shell::run_image(run_options_);
    }
    if (shell_->parsed()) {
        shell_options_.store_root = cache::store_root(cache_dir);
        shell_options_.build_args = parse_args(shell_args_);
        shell_options_.build.registry.client =
            registry_client_options(shell_registry_, nullptr, every_registry);
        if (stop_)
            return shell::stop_environments(shell_options_.store_root, shell_options_.target);
        return shell::run_shell(shell_options_);
    }
    if (ps_->parsed()) {
        return run_ps(cache::store_root(cache_dir), ps_json_);
    }
    return std::nullopt;
}

} // namespace factory::cli
