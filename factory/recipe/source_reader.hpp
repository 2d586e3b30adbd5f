#pragma once
// Reads the steps that fetch sources: git, download and deps (docs/recipe.md).

#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

#include <string>

namespace factory::recipe::detail {

// `node` is the value of the step's kind key; `label` names the step ("[[step]]"). Throw
// factory::Error (usage) on any invalid value, with file:line:col.
GitStep read_git(Reader& reader, const toml::node& node, const std::string& label);
DownloadStep read_download(Reader& reader, const toml::node& node, const std::string& label);
DepsStep read_deps(Reader& reader, const toml::node& node, const std::string& label);

} // namespace factory::recipe::detail
