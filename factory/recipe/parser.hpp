#pragma once
// recipe::load: TOML file → validated Recipe. Every error is a factory::Error with
// ExitCode::usage whose message starts with "file:line:col: ".

#include "factory/recipe/recipe.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace factory::recipe {

struct LoadOptions {
    std::map<std::string, std::string>
        args; // --arg NAME=VALUE; a name the recipe lacks is an error
    // SOURCE_DATE_EPOCH's text; overrides [image] epoch. Not a non-negative integer (or out of
    // range): an error starting with "file: ".
    std::optional<std::string> source_date_epoch;
    std::string host_architecture; // GOARCH spelling; empty = detect
};

// Throws factory::Error (ExitCode::usage) on any problem.
Recipe load(const std::filesystem::path& file, const LoadOptions& options = {});
// The same for recipe text already in memory (used by tests and the fuzzer); `file` is only
// used in messages and to resolve relative paths.
Recipe parse(std::string_view text, const std::filesystem::path& file,
             const LoadOptions& options = {});

} // namespace factory::recipe
