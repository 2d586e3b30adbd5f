#pragma once
// A recipe's pins (docs/lockfile.md): `factory lock` resolves every step that reads the outside
// world and writes them to RECIPE.lock (recipe/lockfile.hpp); `factory build --locked` keys
// those steps on the pins instead of asking the network, and refuses a lock that no longer
// matches the recipe.
//
//   pinnable step      the recipe's side (checked under --locked)   resolved (used as-is)
//   registry base      reference                                     digest
//   git step           url (without credentials), ref                commit, name
//   download step      url (without credentials), sha256             —
//   debian base        suite, variant, mirror, include, components,   release-date (checked
//                      architecture                                    before a bootstrap),
//                                                                      packages (checked once
//                                                                      bootstrapped)

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "factory/builder/builder.hpp"
#include "factory/recipe/lockfile.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/util/progress.hpp"

namespace factory::builder {

struct StepRef;
struct StepEnv;

// The recipe's side of each pinnable step, in lock order: kind and the fields the recipe
// writes (no resolved field).
std::vector<recipe::Pin> pinnable_steps(const recipe::Recipe& recipe);

// Every difference between the lock and the recipe, one line each: "main.2: git URL main: ref
// main → dev", "main.3: download URL: not in the lock file", "main.4: in the lock file, but
// the recipe has no pinned step there". Empty when they match.
std::vector<std::string> lock_mismatches(const recipe::Recipe& recipe,
                                         const recipe::Lockfile& lock);

// RECIPE.lock read and checked against the recipe. Throws Error: no lock file or a bad one
// (ExitCode::usage), a mismatch (ExitCode::failure, every line of lock_mismatches).
recipe::Lockfile load_lock_for(const recipe::Recipe& recipe);

// The pin of a step under --locked (env.lock), or nullptr when the build is not locked.
const recipe::Pin* locked_pin(const StepEnv& env, const StepRef& step);

struct LockRequest {
    // --update: nullopt moves only what the recipe changed (new steps, edited ones); an empty
    // list moves every pin; else the pins named: "STAGE.STEP", a stage, or a URL / reference.
    std::optional<std::vector<std::string>> update;
};

struct LockOutcome {
    std::filesystem::path file;
    std::vector<std::string> changes; // "main.2: git URL main: 1a2b3c4d5e6f → 4d5e6f…"
    // Kept pins whose branch or tag moved upstream since (not under --offline): "main.2: git
    // URL main: moved upstream 1a2b3c4d5e6f → 4d5e6f7a8b9c, kept (factory lock --update main.2
    // RECIPE moves it)"; "main.2: git URL main: the pinned commit C is not in the repository
    // (main is at D); factory lock --update main.2 RECIPE pins that"; or "main.2: git URL
    // main: cannot check upstream: WHY".
    std::vector<std::string> notices;
    std::size_t pins = 0;
};

// Resolves the recipe's pins (an ls-remote per git step, a manifest request per registry base,
// a Debian base built when the store lacks it) and writes RECIPE.lock atomically. Pins not to
// be moved are kept as the existing lock has them; a kept git pin of a branch or tag costs one
// ls-remote, to tell of a move (LockOutcome::notices). Throws Error: a NAME that matches no pin
// (ExitCode::usage), a fetch failing.
LockOutcome lock_recipe(const std::filesystem::path& recipe, const BuildOptions& options,
                        const LockRequest& request, Progress& progress);

} // namespace factory::builder
