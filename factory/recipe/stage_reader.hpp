#pragma once
// Reads one stage — its base, its steps and its config — from the recipe's top-level table
// (stage "main") or from a [stage.NAME] table.

#include "factory/recipe/debian_reader.hpp"
#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace factory::recipe::detail {

// What a stage may refer to.
struct StageScope {
    std::vector<std::string> stages;                       // every declared stage, in order
    std::set<std::string> stage_set;                       // the same, for lookups
    std::map<std::string, std::filesystem::path> contexts; // [contexts]
    Platform platform;                                     // the image's ([image] platform)
};

enum class Placement {
    top_level, // stage "main": [base], [[step]], [config] in the recipe's top-level table
    named,     // [stage.NAME]
};

// `table` holds the keys base, step and config (for the top level, the caller checks the
// other keys). `where` is the stage's own location; a stage without a base starts from
// scratch. Throws factory::Error (usage) on any problem; references to unknown stages are
// errors here, cycles are found by order_stages().
Stage read_stage(Reader& reader, const toml::table& table, const std::string& name,
                 Placement placement, const Location& where, const StageScope& scope);

// Throws unless `name` is in scope.stages: "<label>: unknown stage 'x'; did you mean 'y'?".
void check_stage_ref(const Reader& reader, const std::string& name, const Location& where,
                     const std::string& label, const StageScope& scope);

} // namespace factory::recipe::detail
