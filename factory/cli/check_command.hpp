#pragma once
// `factory build --check RECIPE...`: builds, rebuilds every step in a scratch store and
// compares (builder/check.hpp); prints one line per step and a verdict (docs/cli.md).

#include <string>
#include <vector>

#include "factory/builder/builder.hpp"
#include "factory/util/progress.hpp"

namespace factory::cli {

// The exit code of a check that found a step whose rebuild differs (docs/cli.md "Exit codes"):
// neither a failure to build (1) nor a usage error (2).
inline constexpr int exit_not_reproducible = 3;

// Exit 0 when every step of every recipe reproduced; exit_not_reproducible (3) when one
// differs, after its report; errors are thrown as a build's.
int run_check(const std::vector<std::string>& recipes, const builder::BuildOptions& options,
              Progress& progress);

} // namespace factory::cli
