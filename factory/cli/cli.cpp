#include "factory/cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>

#include "cache/gc.hpp"
#include "cache/root.hpp"
#include "factory/builder/builder.hpp"
#include "factory/builder/plan.hpp"
#include "factory/cli/cache_commands.hpp"
#include "factory/cli/check_command.hpp"
#include "factory/cli/commands.hpp"
#include "factory/cli/disk_outputs.hpp"
#include "factory/cli/files_commands.hpp"
#include "factory/cli/lock_commands.hpp"
#include "factory/cli/registry_commands.hpp"
#include "factory/cli/remote_cache_commands.hpp"
#include "factory/cli/shell_commands.hpp"
#include "factory/cli/usage_message.hpp"
#include "factory/runtime/rootless.hpp"
#include "factory/util/error.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::cli {

namespace {

struct BuildArgs {
    std::vector<std::string> recipes;
    std::vector<std::string> outputs;
    std::vector<std::string> args;
    std::string progress = "auto";
    std::string digest_file;
    bool explain = false;
    bool offline = false, locked = false;
    std::string runtime;
    std::vector<std::string> secrets;
    unsigned jobs = 0;
    bool dry_run = false, json = false, push = false;
    bool check = false;
    std::string max_size, lock_timeout;
    DiskArgs disk;
    std::vector<std::string> cache_from;
    std::string cache_to;
};

builder::BuildOptions base_options(const std::string& cache_dir,
                                   const std::vector<std::string>& args) {
    builder::BuildOptions options;
    options.store_root = cache::store_root(cache_dir);
    options.args = parse_args(args);
    options.source_date_epoch = builder::source_date_epoch_from_env();
    return options;
}

int print_plans(const std::vector<std::string>& recipes, builder::BuildOptions options, bool json,
                Progress& progress) {
    // No store yet: plan against an empty one in a temporary directory, removed afterwards, as
    // `why` does, so that planning creates no store where there was none.
    std::optional<TempDir> empty;
    if (!std::filesystem::exists(options.store_root / "oci-layout")) {
        empty.emplace(std::filesystem::temp_directory_path(), "factory-plan-");
        options.store_root = empty->path() / "store";
    }
    std::vector<builder::Plan> plans;
    for (const auto& r : recipes)
        plans.push_back(builder::plan_recipe(r, options, progress));
    std::string out = json ? builder::plan_json(plans) : "";
    if (!json)
        for (const auto& p : plans)
            out += builder::plan_text(p);
    std::fputs(out.c_str(), stdout);
    return 0;
}

// stdout in the recipes' order, whichever finished first (docs/cli.md); then the errors.
int print_outcomes(const std::vector<builder::RecipeOutcome>& outcomes,
                   const std::vector<std::string>& recipes, AtomicFile* digest_file) {
    std::string digests;
    for (const auto& o : outcomes) {
        if (!o.result) continue;
        std::printf("%s:%s %s\n", o.result->name.c_str(), o.result->tags.front().c_str(),
                    o.result->manifest_digest.c_str());
        digests += o.result->manifest_digest + "\n";
    }
    std::fflush(stdout);
    std::exception_ptr first;
    for (std::size_t i = 0; i < outcomes.size(); ++i)
        if (outcomes[i].error) {
            if (!first) first = outcomes[i].error;
            if (outcomes.size() == 1) break;
            try {
                std::rethrow_exception(outcomes[i].error);
            } catch (const std::exception& e) {
                // Several recipes: each error says whose it is (unless it names the file).
                std::string what = e.what();
                if (!what.starts_with(recipes[i])) what = recipes[i] + ": " + what;
                std::fprintf(stderr, "factory: error: %s\n", what.c_str());
            }
        }
    if (first && outcomes.size() == 1) std::rethrow_exception(first);
    if (first) return static_cast<int>(ExitCode::failure);
    if (digest_file) {
        digest_file->write(digests);
        digest_file->commit();
        value_or_throw(runtime::give_to_caller(digest_file->target()));
    }
    return 0;
}

// A command a signal stopped (util/interrupt.hpp): its one error line and 128 + N.
int report_interrupted() {
    auto e = interrupted_error();
    std::fprintf(stderr, "factory: error: %s\n", e.what());
    return static_cast<int>(e.code());
}

int run_build(BuildArgs a, const std::string& cache_dir, const RegistryFlags& registry_flags) {
    if (a.json && !a.dry_run)
        throw usage_error("--json goes with --dry-run (the plan as JSON); a build prints no JSON");
    auto pushes = take_registry_outputs(a.outputs);
    auto mode = parse_progress_mode(a.progress);
    if (!mode)
        throw usage_error("--progress " + a.progress + ": expected auto, tty, plain or json");
    // Before anything can warn: in json mode the warnings are events (progress.hpp warn()).
    Progress progress(*mode);
    builder::BuildOptions options = base_options(cache_dir, a.args);
    apply_registry_flags(options, registry_flags);
    options.outputs = a.outputs;
    options.disk = parse_disk_options(a.disk);
    options.explain = a.explain;
    options.offline = a.offline;
    options.locked = a.locked;
    options.runtime = a.runtime;
    for (const auto& spec : a.secrets)
        options.secrets.insert(parse_secret(spec));
    if (!a.max_size.empty()) {
        auto size = cache::parse_size(a.max_size);
        if (!size) throw usage_error("--max-size " + a.max_size + ": " + size.error());
        options.max_size = *size;
    }
    if (!a.lock_timeout.empty()) {
        auto d = cache::parse_duration(a.lock_timeout);
        if (!d) throw usage_error("--lock-timeout " + a.lock_timeout + ": " + d.error());
        options.lock_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    }
    if (a.offline && !pushes.empty())
        throw usage_error("-o " + pushes.front() + ": --offline allows no push to a registry");
    if (a.offline && a.push) throw usage_error("--push: --offline allows no push to a registry");
    if ((a.outputs.size() > 0 || pushes.size() > 0) && a.recipes.size() > 1)
        throw usage_error("-o takes a single recipe; build the recipes one at a time");
    options.jobs = a.jobs;
    if (a.push) check_recipe_push(a.recipes, options.args);
    options.cache_from = a.cache_from;
    options.cache_to = a.cache_to;
    if (a.check) {
        if (a.dry_run || !a.outputs.empty() || !pushes.empty() || a.push || !a.digest_file.empty())
            throw usage_error("--check takes no --dry-run, -o, --push or --digest-file");
        return run_check(a.recipes, options, progress);
    }
    if (a.dry_run) return print_plans(a.recipes, options, a.json, progress);
    // Its temp file first: a --digest-file that can't be written fails before anything is built
    // or published.
    std::optional<AtomicFile> digest_file;
    if (!a.digest_file.empty()) {
        std::error_code ec;
        if (std::filesystem::is_directory(a.digest_file, ec))
            throw Error("--digest-file " + a.digest_file + ": is a directory; give a file's path");
        try {
            digest_file.emplace(a.digest_file);
        } catch (const Error& e) {
            throw Error("--digest-file " + a.digest_file + ": " + e.what());
        }
    }
    // Through the pushes and the --digest-file too (the build has its own guard inside).
    InterruptGuard interrupts;
    std::vector<std::filesystem::path> recipes(a.recipes.begin(), a.recipes.end());
    auto outcomes = builder::build_recipes(recipes, options, progress);
    auto push_flags = registry_flags; // the pushes' progress is the build's
    push_flags.progress = a.progress;
    if (!pushes.empty() && outcomes.size() == 1 && outcomes.front().result) {
        const auto& r = *outcomes.front().result;
        push_outputs(pushes, r.name + ":" + r.tags.front(), options.store_root, push_flags);
    }
    for (const auto& o : outcomes) // --push: each recipe's image to its own name and tags
        if (a.push && o.result) {
            auto p = recipe_push(o.result->name, o.result->tags);
            push_outputs({p.destination}, p.destination.substr(9), options.store_root, push_flags,
                         p.extra_tags);
        }
    throw_if_interrupted();
    return print_outcomes(outcomes, a.recipes, digest_file ? &*digest_file : nullptr);
}

// Rootless (docs/runtime.md "Rootless"): how much a non-root caller's command needs factory's
// user namespace, where factory is root.
enum class Namespace {
    never,    // images, inspect: they only read the store
    wanted,   // entered when the host gives one, so that the store has one owner; else the
              // command runs as the caller, as far as it can (a copy-only build, why, cache …)
    required, // run, shell, unshare, a build with RUN steps or a Debian base
};

bool build_needs_root(const BuildArgs& a, const std::string& cache_dir) {
    auto options = base_options(cache_dir, a.args);
    for (const auto& r : a.recipes) {
        try {
            if (builder::runs_as_root(r, options)) return true;
        } catch (const Error&) {
            // The build itself reports the recipe's error.
        }
    }
    return false;
}

// Runs the command again in the namespace when it should; nullopt: go on here. The store and
// the runtime's state directory are chosen first, with the caller's environment.
std::optional<int> maybe_enter_rootless(Namespace need, int argc, char** argv,
                                        const std::string& cache_dir,
                                        const std::function<bool()>& build_needs_root) {
    if (::geteuid() == 0 || need == Namespace::never) return std::nullopt;
    if (std::getenv("FACTORY_ROOTLESS"))
        throw Error("rootless: FACTORY_ROOTLESS is set but factory is not root in a user "
                    "namespace (unset it)");
    auto maps = runtime::rootless_maps();
    if (!maps) {
        if (need == Namespace::required || build_needs_root()) throw Error(maps.error());
        return std::nullopt;
    }
    runtime::RootlessEntry entry;
    entry.argv.assign(argv, argv + argc);
    entry.store_root = cache::store_root(cache_dir).string();
    const char* state = std::getenv("FACTORY_RUNTIME_ROOT");
    if (!state || state[0] != '/')
        entry.extra_env.push_back("FACTORY_RUNTIME_ROOT=" +
                                  runtime::rootless_state_dir(entry.store_root));
    return runtime::run_rootless(entry, *maps);
}

// `factory unshare [CMD…]`: the command (default $SHELL, else /bin/sh) replaces factory, in
// the rootless namespace when the caller is not root.
int run_unshare(std::vector<std::string> args) {
    if (args.empty()) {
        const char* sh = std::getenv("SHELL");
        args.push_back(sh && *sh ? sh : "/bin/sh");
    }
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    ::execvp(argv[0], argv.data());
    // As shells do: 127 when there is no such command, 126 when it can't be executed.
    int err = errno;
    throw Error("cannot run " + args[0] + ": " + std::strerror(err),
                err == ENOENT || err == ENOTDIR ? ExitCode::not_found : ExitCode::cannot_execute);
}

void add_disk_flags(CLI::App& cmd, DiskArgs& disk) {
    cmd.add_option("--size", disk.size,
                   "ext4:/raw: size of the file system (512M, 4G; default: content + margin)");
    cmd.add_option("--label", disk.label, "ext4:/raw: file system label (default: rootfs)");
}

} // namespace

int run(int argc, char** argv) {
    CLI::App app{"factory: reproducible OCI images and the dev environments built from them"};
    app.set_version_flag("--version", std::string("factory ") + FACTORY_VERSION);
    app.require_subcommand(1);
    std::string cache_dir;
    app.add_option(
        "--cache", cache_dir,
        "Store directory (default: $FACTORY_CACHE, $XDG_CACHE_HOME/factory, ~/.cache/factory)");

    BuildArgs build_args;
    auto* build = app.add_subcommand("build", "Build recipes into the store (and outputs)");
    build->add_option("--cache", cache_dir, "Store directory");
    build->add_option("recipes", build_args.recipes, "Recipe files")->required();
    // Options with values take one each (repeat the option), as docker and podman do, so the
    // recipes after them stay recipes.
    build
        ->add_option("-o,--output", build_args.outputs,
                     "Also write the image to DEST (repeatable; one RECIPE): oci:DIR[:TAG], "
                     "oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], rootfs:DIR, "
                     "rootfs-tar:FILE, ext4:FILE, raw:FILE, docker://HOST/REPO[:TAG] (pushed)")
        ->allow_extra_args(false);
    build
        ->add_option("--arg", build_args.args, "Set a recipe [args] value: NAME=VALUE (repeatable)")
        ->allow_extra_args(false);
    add_disk_flags(*build, build_args.disk);
    build->add_option("--progress", build_args.progress, "auto|tty|plain|json");
    build->add_option("--digest-file", build_args.digest_file,
                      "Write the manifest digest(s) to this file");
    build->add_flag("--explain", build_args.explain,
                    "Say why each step that rebuilds missed the cache");
    build->add_flag("--offline", build_args.offline,
                    "No network for git, download and base steps: what the store lacks is an "
                    "error");
    build->add_flag("--locked", build_args.locked,
                    "Build the pins of RECIPE.lock (factory lock); a lock not matching the recipe "
                    "is an error");
    build->add_option(
        "--runtime", build_args.runtime,
        "OCI runtime for RUN steps: crun, runc or a path (default: $FACTORY_RUNTIME, else detect)");
    build
        ->add_option("--secret", build_args.secrets,
                     "Give RUN steps a secret: id=ID,src=FILE or id=ID,env=VAR (repeatable; never "
                     "stored)")
        ->allow_extra_args(false);
    build->add_option("--max-size", build_args.max_size,
                      "Prune the store to SIZE after the build when it is over it (10G, 500M; "
                      "default: $FACTORY_CACHE_MAX_SIZE)");
    build->add_option("--lock-timeout", build_args.lock_timeout,
                      "Give up after DURATION (30s, 5m) waiting for a prune or repair of the "
                      "store (default: wait)");
    build->add_option("-j,--jobs", build_args.jobs,
                      "Stages to run at once over all recipes (default: the number of cores)");
    build->add_flag(
        "--push", build_args.push,
        "Push the image to its recipe name (a registry reference) with each of its tags");
    build->add_flag("--dry-run", build_args.dry_run,
                    "Print the plan (stages, steps, keys, cached or not); build nothing");
    build->add_flag("--json", build_args.json, "With --dry-run: the plan as JSON");
    build->add_flag("--check", build_args.check,
                    "Rebuild every step in an empty store and compare it with the stored one "
                    "(exit 3 when one differs)");

    // `factory plan` is `factory build --dry-run`, under the name tools look for.
    BuildArgs plan_args;
    plan_args.dry_run = true;
    auto* plan = app.add_subcommand("plan", "Print the plan of RECIPEs (as build --dry-run)");
    plan->add_option("--cache", cache_dir, "Store directory");
    plan->add_option("recipes", plan_args.recipes, "Recipe files")->required();
    plan->add_option("--arg", plan_args.args, "Set a recipe [args] value: NAME=VALUE (repeatable)")
        ->allow_extra_args(false);
    plan->add_flag("--offline", plan_args.offline,
                   "No network for git, download and base steps: plan from the store");
    plan->add_flag("--locked", plan_args.locked,
                   "Plan the pins of RECIPE.lock; a lock not matching the recipe is an error");
    plan->add_option("--secret", plan_args.secrets,
                     "The secrets the recipe's RUN steps need: id=ID,src=FILE or id=ID,env=VAR")
        ->allow_extra_args(false);
    plan->add_flag("--json", plan_args.json, "The plan as JSON");
    add_remote_cache_flags(*build, build_args.cache_from, build_args.cache_to);

    ExportArgs export_args;
    auto* export_cmd = app.add_subcommand("export", "Write an image of the store to destinations");
    export_cmd->add_option("--cache", cache_dir, "Store directory");
    export_cmd->add_option("ref", export_args.ref, "NAME[:TAG] or sha256:DIGEST")->required();
    export_cmd
        ->add_option("dest", export_args.outputs,
                     "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], "
                     "rootfs:DIR, rootfs-tar:FILE, ext4:FILE, raw:FILE, docker://HOST/REPO[:TAG]")
        ->required();
    add_disk_flags(*export_cmd, export_args.disk);

    WhyArgs why_args;
    auto* why = app.add_subcommand("why", "Say which steps would rebuild, and why");
    why->add_option("--cache", cache_dir, "Store directory");
    why->add_option("recipe", why_args.recipe, "Recipe file")->required();
    why->add_option_function<int>(
        "--step", [&](int n) { why_args.step = n; }, "Only this step (1-based, in build order)");
    why->add_option("--arg", why_args.args, "Set a recipe [args] value: NAME=VALUE (repeatable)")
        ->allow_extra_args(false);

    auto* cache_cmd = app.add_subcommand("cache", "Inspect and maintain the store");
    cache_cmd->require_subcommand(1);
    bool stats_json = false, stats_zero = false, repair = false;
    PruneArgs prune_args;
    auto* stats = cache_cmd->add_subcommand("stats", "Hits, misses and sizes");
    stats->add_option("--cache", cache_dir, "Store directory");
    stats->add_flag("--json", stats_json, "Print JSON");
    stats->add_flag("--zero", stats_zero, "Reset the hit and miss counters (after printing them)");
    auto* ls = cache_cmd->add_subcommand("ls", "List step records, most recently used first");
    ls->add_option("--cache", cache_dir, "Store directory");
    auto* prune = cache_cmd->add_subcommand("prune", "Remove least recently used results");
    prune->add_option("--cache", cache_dir, "Store directory");
    prune->add_option("--max-size", prune_args.max_size, "Shrink the store to SIZE (10G, 500M)");
    prune->add_option("--older-than", prune_args.older_than,
                      "Remove what was unused for DURATION (7d, 12h)");
    prune->add_flag("--dry-run", prune_args.dry_run, "Only say what would be removed");
    auto* verify = cache_cmd->add_subcommand("verify", "Re-hash every blob and check every record");
    verify->add_option("--cache", cache_dir, "Store directory");
    verify->add_flag("--repair", repair, "Quarantine corrupt blobs and drop broken records");
    RemoteCacheCommands remote_cache_commands(*cache_cmd, cache_dir);

    ImagesArgs images_args;
    auto* images = app.add_subcommand("images", "List the images in the store");
    images->add_option("--cache", cache_dir, "Store directory");
    images->add_flag("--json", images_args.json, "One JSON object per image");

    InspectArgs inspect_args;
    auto* inspect = app.add_subcommand("inspect", "Show an image's config and layers");
    inspect->add_option("--cache", cache_dir, "Store directory");
    inspect->add_option("ref", inspect_args.ref, "NAME[:TAG] or sha256:DIGEST")->required();
    inspect->add_flag("--json", inspect_args.json, "Print JSON (manifest, config)");
    bool inspect_files = false;
    inspect->add_flag("--files", inspect_files,
                      "List the flattened tree: type, mode, owner, size, path, layer");

    DiffArgs diff_args;
    auto* diff = app.add_subcommand("diff", "Files added, removed and changed from image A to B");
    diff->add_option("--cache", cache_dir, "Store directory");
    diff->add_option("a", diff_args.a,
                     "NAME[:TAG], sha256:DIGEST, RECIPE.toml, oci:DIR[:TAG], "
                     "oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], "
                     "docker://HOST/REPO[:TAG]")
        ->required();
    diff->add_option("b", diff_args.b, "The same forms")->required();
    diff->add_flag("--json", diff_args.json, "Print JSON");

    ShellCommands shell_commands(app, cache_dir);
    RegistryCommands registry_commands(app, cache_dir);
    add_registry_flags(*build, registry_commands.flags(), JobsFlag::no);
    add_pull_flag(*build, registry_commands.flags());
    add_registry_flags(*plan, registry_commands.flags(), JobsFlag::no);
    add_pull_flag(*plan, registry_commands.flags());
    add_registry_flags(*export_cmd, registry_commands.flags());
    add_registry_flags(*diff, registry_commands.flags(), JobsFlag::no);
    add_pull_flag(*diff, registry_commands.flags());
    LockCommand lock_command(app, cache_dir, registry_commands.flags());

    std::vector<std::string> unshare_args;
    auto* unshare = app.add_subcommand(
        "unshare", "Run a command (default: $SHELL) as root of factory's rootless user "
                   "namespace, where the store's files can be removed");
    unshare->add_option("cmd", unshare_args, "The command (after --)");

    try {
        try {
            app.parse(argc, argv);
        } catch (const CLI::CallForHelp& e) {
            return app.exit(e);
        } catch (const CLI::CallForVersion& e) {
            return app.exit(e);
        } catch (const CLI::ParseError& e) {
            std::vector<std::string> args(argv + 1, argv + argc);
            std::fprintf(stderr, "factory: error: %s\n", usage_message(app, e, args).c_str());
            return static_cast<int>(ExitCode::usage);
        }
        auto need = images->parsed() || inspect->parsed()          ? Namespace::never
                    : shell_commands.parsed() || unshare->parsed() ? Namespace::required
                                                                   : Namespace::wanted;
        if (auto code = maybe_enter_rootless(need, argc, argv, cache_dir, [&] {
                if (lock_command.parsed()) {
                    BuildArgs lock_args;
                    lock_args.recipes = lock_command.recipes();
                    return build_needs_root(lock_args, cache_dir);
                }
                return build->parsed() && build_needs_root(build_args, cache_dir);
            }))
            return *code;
        if (unshare->parsed()) return run_unshare(unshare_args);
        if (build->parsed()) return run_build(build_args, cache_dir, registry_commands.flags());
        if (plan->parsed()) return run_build(plan_args, cache_dir, registry_commands.flags());
        if (images->parsed()) return run_images(images_args, cache::store_root(cache_dir));
        if (export_cmd->parsed())
            return run_export(export_args, cache::store_root(cache_dir), registry_commands.flags());
        if (why->parsed()) return run_why(base_options(cache_dir, why_args.args), why_args);
        if (stats->parsed())
            return run_cache_stats(cache::store_root(cache_dir), stats_json, stats_zero);
        if (ls->parsed()) return run_cache_ls(cache::store_root(cache_dir));
        if (prune->parsed()) return run_cache_prune(cache::store_root(cache_dir), prune_args);
        if (verify->parsed()) return run_cache_verify(cache::store_root(cache_dir), repair);
        if (auto code = remote_cache_commands.dispatch(cache_dir)) return *code;
        if (inspect->parsed() && inspect_files)
            return run_inspect_files({inspect_args.ref, inspect_args.json},
                                     base_options(cache_dir, {}));
        if (inspect->parsed()) return run_inspect(inspect_args, cache::store_root(cache_dir));
        if (diff->parsed()) {
            auto options = base_options(cache_dir, {});
            apply_registry_flags(options, registry_commands.flags());
            return run_diff(diff_args, options);
        }
        if (auto code = shell_commands.dispatch(cache_dir)) return *code;
        if (auto code = registry_commands.dispatch(cache_dir)) return *code;
        if (auto code = lock_command.dispatch(cache_dir)) return *code;
    } catch (const Error& e) {
        std::fflush(stdout);
        if (interrupted()) return report_interrupted(); // whatever the stopped work says
        if (!e.context().empty()) std::fprintf(stderr, "%s\n", e.context().c_str());
        std::fprintf(stderr, "factory: error: %s\n", e.what());
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::fflush(stdout);
        if (interrupted()) return report_interrupted();
        std::fprintf(stderr, "factory: error: %s\n", e.what());
        return static_cast<int>(ExitCode::failure);
    }
    return 0;
}

} // namespace factory::cli
