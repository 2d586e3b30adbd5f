#pragma once
// Builds recipes into the store: plans their stages (plan.hpp), runs the plans (execute.hpp),
// assembles the output stage's config and manifest, writes the requested outputs and then
// tags it `name:tag` in the store.

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cache/verify.hpp"
#include "factory/export/target.hpp"
#include "factory/registry/base.hpp"
#include "factory/util/progress.hpp"

namespace factory::builder {

struct BuildOptions {
    std::filesystem::path store_root;
    std::vector<std::string>
        outputs; // "oci:DIR[:TAG]", "oci-archive:F[:TAG]", "docker-archive:F[:NAME:TAG]"
    std::map<std::string, std::string> args; // --arg
    // SOURCE_DATE_EPOCH as set (non-empty), checked by the recipe loader so that its error
    // names the recipe (docs/recipe.md "General rules").
    std::optional<std::string> source_date_epoch;
    unsigned threads = 0; // compression threads; 0 = one per core (never changes the bytes)
    bool explain = false; // say why each step that misses the cache misses (progress events)
    std::string runtime;  // "crun", "runc", a path, or "" (FACTORY_RUNTIME, else detect)
    std::map<std::string, std::string> secrets; // --secret id → value; never stored or logged
    unsigned jobs = 0; // --jobs: stages running at once over all recipes; 0 = one per core
    // --max-size: prune the store to this after the build (nullopt: FACTORY_CACHE_MAX_SIZE).
    std::optional<std::uint64_t> max_size;
    // --lock-timeout: how long to wait for a prune or repair holding the store (nullopt: ever).
    std::optional<std::chrono::milliseconds> lock_timeout;
    registry::BaseOptions registry; // bases by registry reference: --pull, TLS, retries
    bool offline = false;           // --offline: no network for factory's own fetches
    // git and download steps from the store's mirrors and downloads only, bases as usual
    // (build --check's rebuild: the sources as the first build fetched them).
    bool sources_from_store = false;
    bool locked = false;        // --locked: pinned steps use RECIPE.lock (lock.hpp)
    exporter::DiskOptions disk; // --size, --label for ext4: and raw: outputs
    // --cache-from / --cache-to: registry caches (docs/cache.md "Remote cache").
    std::vector<std::string> cache_from; // docker://HOST/REPO:TAG, looked up in order
    std::string cache_to;                // docker://HOST/REPO:TAG[,mode=min|max][,keep=N] or ""
};

// One step as `factory why` reports it.
struct StepReport {
    std::string id;   // "main 2/3"
    std::string what; // "copy src -> /src"
    bool cached = false;
    std::vector<std::string> reasons; // why it misses; empty when cached
};

struct BuildResult {
    std::string name; // image name
    std::vector<std::string> tags;
    std::string manifest_digest; // "sha256:…"
    std::uint64_t manifest_size = 0;
};

// Throws Error: ExitCode::usage for recipe problems, ExitCode::failure for build failures.
BuildResult build_recipe(const std::filesystem::path& recipe, const BuildOptions& options,
                         Progress& progress);

// One recipe's end in build_recipes: its result, or the error that stopped it.
struct RecipeOutcome {
    std::optional<BuildResult> result;
    std::exception_ptr error; // a factory::Error (or another exception) when it failed
};

// Builds the recipes at the same time, their stages sharing `options.jobs` slots; a failing
// recipe doesn't stop the others. Throws Error (before anything runs) for a recipe that can't
// be loaded or planned; the outcomes are in the recipes' order.
std::vector<RecipeOutcome> build_recipes(const std::vector<std::filesystem::path>& recipes,
                                         const BuildOptions& options, Progress& progress);

// Plans every step of the recipe and computes its cache key, as a build would, without
// building anything or writing to the store (beyond the stat cache and listings): for each step,
// whether it would be reused and, if not, why — compared with the last build of the same step.
std::vector<StepReport> explain_recipe(const std::filesystem::path& recipe,
                                       const BuildOptions& options, Progress& progress);

// True if building the recipe runs containers (RUN steps) or bootstraps a Debian base: what a
// non-root caller can only do in the rootless namespace (docs/runtime.md "Rootless"). Throws
// Error for a recipe that can't be loaded.
bool runs_as_root(const std::filesystem::path& recipe, const BuildOptions& options);

// SOURCE_DATE_EPOCH from the environment: nullopt when unset or empty (reproducible-builds.org:
// empty means unset), else its text, unchecked (recipe::load checks it).
std::optional<std::string> source_date_epoch_from_env();

// Every blob reachable from the store's refs: what GC must keep. Throws Error.
std::vector<std::string> store_root_blobs(const std::filesystem::path& store_root);

// The same for `cache verify` (cache/verify.hpp RefBlobs): a missing or unreadable manifest or
// index is listed and walked past, so one broken ref doesn't hide the others'. Throws Error only
// when index.json can't be read.
cache::RefBlobs store_ref_blobs(const std::filesystem::path& store_root);

} // namespace factory::builder
