#include "factory/cli/shell_commands.hpp"

#include <CLI/CLI.hpp>

#include "cache/root.hpp"

namespace factory::cli {

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

    shell_ = app.add_subcommand("shell", "An interactive shell (or a command) in a recipe's "
                                         "image or a store image, with the project mounted");
    shell_->add_option("--cache", cache_dir, "Store directory");
    shell_->add_option("target", shell_options_.target, "RECIPE.toml, NAME[:TAG] or sha256:DIGEST")
        ->required();
    shell_->add_option("cmd", shell_options_.args, "The command (after --); default: a shell");
    shell_->add_option("--project", shell_options_.project,
                       "Project directory mounted at its own path (default: the recipe's git "
                       "top level, or the current directory for an image)");
    shell_->add_flag("--root", shell_options_.root, "Run as root instead of the caller");
    shell_->add_option("--home", shell_options_.home,
                       "persistent (a HOME kept in the store per environment) or host");
}

bool ShellCommands::parsed() const {
    return run_->parsed() || shell_->parsed();
}

std::optional<int> ShellCommands::dispatch(const std::string& cache_dir) {
    if (run_->parsed()) {
        run_options_.store_root = cache::store_root(cache_dir);
        return shell::run_image(run_options_);
    }
    if (shell_->parsed()) {
        shell_options_.store_root = cache::store_root(cache_dir);
        return shell::run_shell(shell_options_);
    }
    return std::nullopt;
}

} // namespace factory::cli
