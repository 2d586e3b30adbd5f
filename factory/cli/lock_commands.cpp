#include "factory/cli/lock_commands.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "cache/root.hpp"
#include "factory/builder/lock.hpp"
#include "factory/cli/commands.hpp"

namespace factory::cli {

LockCommand::LockCommand(CLI::App& app, std::string& cache_dir, RegistryFlags& registry)
    : registry_(registry) {
    cmd_ = app.add_subcommand("lock", "Pin what the recipes' steps fetch into RECIPE.lock");
    cmd_->add_option("--cache", cache_dir, "Store directory");
    // Not required() here: `--update RECIPE` hands the recipe to --update (see dispatch).
    cmd_->add_option("recipes", recipes_, "Recipe files");
    cmd_->add_option("--update", update_,
                     "Move the pin NAME (STAGE.STEP, STAGE, a URL or reference; repeatable); "
                     "alone: move every pin")
        ->expected(0, 1)
        ->allow_extra_args(false);
    cmd_->add_option("--arg", args_, "Set a recipe [args] value: NAME=VALUE (repeatable)")
        ->allow_extra_args(false);
    cmd_->add_option("--secret", secrets_,
                     "A secret for git steps: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
        ->allow_extra_args(false);
    cmd_->add_flag("--offline", offline_, "No network: pin what the store holds");
    cmd_->add_option("--progress", progress_, "auto|tty|plain|json");
    add_registry_flags(*cmd_, registry_, JobsFlag::no);
}

bool LockCommand::parsed() const {
    return cmd_->parsed();
}

std::optional<int> LockCommand::dispatch(const std::string& cache_dir) {
    if (!cmd_->parsed()) return std::nullopt;
    builder::LockRequest request;
    if (cmd_->count("--update") > 0) {
        std::vector<std::string> names;
        for (const auto& u : update_) {
            // `--update app.toml`: the recipe, not a name (a NAME is never a .toml file).
            std::error_code ec;
            if (u.ends_with(".toml") && std::filesystem::is_regular_file(u, ec))
                recipes_.insert(recipes_.begin(), u);
            else if (!u.empty())
                names.push_back(u);
        }
        request.update = names;
    }
    if (recipes_.empty()) throw usage_error("lock: a RECIPE is required");
    auto mode = parse_progress_mode(progress_);
    if (!mode) throw usage_error("--progress " + progress_ + ": expected auto, tty, plain or json");
    builder::BuildOptions options;
    options.store_root = cache::store_root(cache_dir);
    options.args = parse_args(args_);
    options.source_date_epoch = builder::source_date_epoch_from_env();
    options.offline = offline_;
    for (const auto& spec : secrets_)
        options.secrets.insert(parse_secret(spec));
    Progress progress(*mode); // first: in json mode warnings are its events
    apply_registry_flags(options, registry_);
    for (const auto& recipe : recipes_) {
        auto outcome = builder::lock_recipe(recipe, options, request, progress);
        for (const auto& change : outcome.changes)
            std::printf("%s\n", change.c_str());
        for (const auto& notice : outcome.notices)
            std::printf("%s\n", notice.c_str());
        std::printf("%s: %zu %s%s\n", outcome.file.c_str(), outcome.pins,
                    outcome.pins == 1 ? "pin" : "pins",
                    outcome.changes.empty() ? ", unchanged" : "");
    }
    return 0;
}

} // namespace factory::cli
