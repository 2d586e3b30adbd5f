#pragma once
// Reads a RUN step: `run` and its options (shell, env, user, workdir, network, cache, secret)
// from one [[step]] table.

#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

#include <string>
#include <vector>

namespace factory::recipe::detail {

// The keys a RUN step may have besides `run`; on any other step kind they are errors.
const std::vector<std::string>& run_options();

// `table` is the step (its keys already checked against the step keys); `label` names it in
// messages ("[[step]]", "[[stage.x.step]]"). `run` is ${ARG}-expanded with
// ArgRefs::declared_only (the shell's ${HOME} stays); every other value strictly. Throws
// factory::Error (usage) on any invalid value.
RunStep read_run(Reader& reader, const toml::table& table, const std::string& label);

} // namespace factory::recipe::detail
