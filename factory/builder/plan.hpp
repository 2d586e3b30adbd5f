#pragma once
// A recipe as a plan: its stages in an order they can run, each with the stages it needs and its
// steps, each step with its kind, what it reads and its cache key — computed without running
// anything. `factory build --dry-run`, `factory why` and `--explain` print it; the executor
// (execute.hpp) runs it. The model is ninja's Plan/Builder split: the plan says what is to be
// done, the executor does it.

#include <filesystem>
#include <string>
#include <vector>

#include "cache/key.hpp"
#include "factory/builder/builder.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/util/progress.hpp"

namespace factory::builder {

struct PlannedStep {
    std::string kind;                // a StepKind's name: "base", "debian", "copy", "run"
    std::string id;                  // "main 2/3", "main base"
    std::string what;                // "copy src -> /src"
    std::vector<std::string> inputs; // the stages whose files it reads
    // Filled by plan_recipe (empty from plan_steps):
    std::string key;                  // 64 hex; "" when it can't be known before an earlier
                                      // step is built (see reasons)
    bool cached = false;              // its result is in the store
    std::vector<std::string> reasons; // why it would rebuild, compared with its last build
    cache::Fields fields;             // what its key is made of (key_fields.hpp)
};

struct PlannedStage {
    std::string name;
    std::vector<std::string> needs; // stages that must be finished before it starts
    std::vector<PlannedStep> steps; // its base (when it is a step) first
    // true when steps[0] is the stage's base (an image or a Debian base); a scratch base or
    // another stage is no step.
    bool has_base_step = false;
};

struct Plan {
    std::filesystem::path recipe; // as given
    std::string image;            // "name:tag"
    std::vector<PlannedStage> stages;
};

// Whether planning runs the step kinds' checks of what a build needs from the command line (a
// secret): a build and its dry run do, `why` (which builds nothing) doesn't.
enum class Checks { yes, no };

// The stages and steps of a loaded recipe, with each step's kind, id, what and inputs, and the
// checks of every kind (a secret the command line lacks: ExitCode::usage). Reads nothing.
Plan plan_steps(const recipe::Recipe& recipe, const BuildOptions& options,
                Checks checks = Checks::yes);

// plan_steps plus every step's key and whether it is cached, as a build would compute them. It
// writes nothing to the store but the stat cache and the blobs of an image base not imported
// yet (later steps are keyed on its config). Throws Error.
Plan plan_recipe(const std::filesystem::path& recipe, const BuildOptions& options,
                 Progress& progress, Checks checks = Checks::yes);

// The plan for people: one line per stage, one per step (kind, id, what, key or "-", cached).
std::string plan_text(const Plan& plan);
// The plan for tools: {"recipe", "image", "stages": [{"name", "needs", "steps": [{"kind", "id",
// "what", "inputs", "key", "cached", "reasons", "fields"}]}]}.
std::string plan_json(const std::vector<Plan>& plans);

} // namespace factory::builder
