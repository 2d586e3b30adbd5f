#include "factory/builder/builder.hpp"

#include <set>
#include <thread>

#include "cache/lock.hpp"

#include "cache/gc.hpp"
#include "cache/verify.hpp"
#include "factory/builder/execute.hpp"
#include "factory/builder/plan.hpp"
#include "factory/builder/remote_cache.hpp"
#include "factory/oci/layout.hpp"
#include "factory/recipe/parser.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::builder {

namespace fs = std::filesystem;

std::optional<std::string> source_date_epoch_from_env() {
    const char* v = std::getenv("SOURCE_DATE_EPOCH");
    if (!v || !*v) return std::nullopt;
    return std::string(v);
}

std::vector<std::string> store_root_blobs(const fs::path& store_root) {
    auto store = oci::Layout::open(store_root);
    std::vector<std::string> out;
    for (const auto& [name, desc] : store.refs()) {
        auto closure = store.closure(desc);
        if (!closure) throw Error("ref " + name + ": " + closure.error());
        for (const auto& d : *closure)
            if (auto hex = d.sha256_hex()) out.push_back(*hex);
    }
    return out;
}

cache::RefBlobs store_ref_blobs(const fs::path& store_root) {
    auto store = oci::Layout::open(store_root);
    cache::RefBlobs out;
    std::set<std::string> seen;
    for (const auto& [name, desc] : store.refs()) {
        std::vector<std::string> problems;
        for (const auto& d : store.closure_tolerant(desc, problems))
            if (auto hex = d.sha256_hex(); hex && seen.insert(*hex).second)
                out.blobs.push_back(*hex);
        for (auto& p : problems)
            out.problems.push_back("ref " + name + ": " + p);
    }
    return out;
}

namespace {

recipe::Recipe load_recipe(const fs::path& recipe_path, const BuildOptions& options) {
    recipe::LoadOptions lo;
    lo.args = options.args;
    lo.source_date_epoch = options.source_date_epoch;
    return recipe::load(recipe_path, lo);
}

// Automatic pruning once the build has let go of the store (FACTORY_CACHE_MAX_SIZE).
void auto_prune(const fs::path& root, std::optional<std::uint64_t> max_size, Progress& progress) {
    auto limit = max_size ? max_size : cache::max_size_from_env();
    if (!limit) return;
    auto store = oci::Layout::open(root, {.tmp_dir = root / "tmp"});
    auto report = cache::maybe_auto_prune(root, store.blobs(), *limit,
                                          [&] { return store_root_blobs(root); });
    if (report && report->bytes_freed > 0)
        progress.event("prune", "freed " + human_size(report->bytes_freed) + " (store over " +
                                    human_size(*limit) + ")");
}

// The cache client: a registry that is down costs seconds, not the minutes of a pull's retries.
registry::ClientOptions cache_client_options(const BuildOptions& options) {
    auto o = options.registry.client;
    o.retry.max_attempts = std::min(o.retry.max_attempts, 3);
    o.retry.max_total = std::min(o.retry.max_total, registry::Seconds(20));
    o.connect_timeout = std::min(o.connect_timeout, registry::Seconds(10));
    return o;
}

// --cache-to after the builds: a failure is a warning and the exit code stays the build's
// (docs/cache.md "When the registry fails").
void export_build_cache(const CacheRef& ref, BuildSession& session, const BuildOptions& options,
                        const std::vector<recipe::Recipe>& recipes, Progress& progress) {
    CacheExportItems items;
    std::set<std::string> seen;
    for (const auto& [key, output] : session.resolved_keys())
        if ((output || ref.mode == CacheMode::max) && seen.insert(key).second)
            items.keys.push_back(key);
    for (const auto& r : recipes)
        for (const auto& stage : r.stages)
            for (const auto& step : stage.steps) {
                const recipe::RunStep* run = step.run    ? &*step.run
                                             : step.deps ? &step.deps->run
                                                         : nullptr;
                if (run)
                    for (const auto& c : run->cache) {
                        auto id = c.id.empty() ? c.target : c.id;
                        if (seen.insert("mount " + id).second)
                            items.mounts.emplace_back(cache_mount_name(id), id);
                    }
            }
    try {
        auto store = oci::Layout::open(options.store_root, {.tmp_dir = options.store_root / "tmp"});
        auto lock = cache::StoreLock::build(options.store_root);
        export_cache(ref, store, items, cache_client_options(options), &progress);
    } catch (const std::exception& e) {
        throw_if_interrupted();
        warn("--cache-to " + ref.text + ": " + e.what() + "; the cache was not exported");
    }
}

} // namespace

BuildResult build_recipe(const fs::path& recipe_path, const BuildOptions& options,
                         Progress& progress) {
    auto outcomes = build_recipes({recipe_path}, options, progress);
    if (outcomes.front().error) std::rethrow_exception(outcomes.front().error);
    return *outcomes.front().result;
}

// Every recipe is loaded and planned first: a recipe error or a missing secret stops the
// command before anything runs. Then each recipe runs in a thread of its own, its stages
// sharing the session's slots with every other recipe's.
std::vector<RecipeOutcome> build_recipes(const std::vector<fs::path>& recipe_paths,
                                         const BuildOptions& options, Progress& progress) {
    std::vector<recipe::Recipe> recipes;
    std::vector<Plan> plans;
    for (const auto& path : recipe_paths) {
        recipes.push_back(load_recipe(path, options));
        plans.push_back(plan_steps(recipes.back(), options));
    }
    std::optional<CacheRef> cache_to;
    if (!options.cache_to.empty())
        cache_to = parse_cache_ref(options.cache_to, "--cache-to", CacheUse::write);
    std::vector<CacheRef> cache_from;
    for (const auto& text : options.cache_from)
        cache_from.push_back(parse_cache_ref(text, "--cache-from", CacheUse::read));
    InterruptGuard interrupts; // SIGINT, SIGTERM, SIGHUP: stop, clean up, publish nothing
    BuildSession session(options.jobs);
    std::optional<RemoteCache> remote;
    if (!cache_from.empty()) {
        remote.emplace(cache_client_options(options));
        remote->load(cache_from);
        session.remote = &*remote;
    }
    std::vector<RecipeOutcome> outcomes(recipes.size());
    auto build_one = [&](std::size_t i) {
        std::string label = recipes.size() > 1 ? recipes[i].name + " " : "";
        try {
            outcomes[i].result =
                execute(recipes[i], plans[i], options, progress, session, ExecMode::build, label);
        } catch (...) {
            outcomes[i].error = std::current_exception();
        }
    };
    if (recipes.size() == 1) {
        build_one(0);
    } else {
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < recipes.size(); ++i)
            threads.emplace_back(build_one, i);
        for (auto& t : threads)
            t.join();
    }
    throw_if_interrupted(); // whatever each recipe's error says; nothing exported or pruned
    if (cache_to) export_build_cache(*cache_to, session, options, recipes, progress);
    throw_if_interrupted();
    auto_prune(options.store_root, options.max_size, progress);
    return outcomes;
}

std::vector<StepReport> explain_recipe(const fs::path& recipe_path, const BuildOptions& options,
                                       Progress& progress) {
    std::vector<StepReport> out;
    for (const auto& stage : plan_recipe(recipe_path, options, progress, Checks::no).stages)
        for (const auto& s : stage.steps)
            if (s.kind != "base") // an image base is no step of `why --step N`
                out.push_back({s.id, s.what, s.cached, s.reasons});
    return out;
}

bool runs_as_root(const fs::path& recipe_path, const BuildOptions& options) {
    auto r = load_recipe(recipe_path, options);
    for (const auto& stage : r.stages) {
        if (stage.base.kind == recipe::Base::Kind::debian) return true;
        for (const auto& step : stage.steps)
            if (step.kind == recipe::StepKind::run || step.kind == recipe::StepKind::deps)
                return true;
    }
    return false;
}

} // namespace factory::builder
