#pragma once
// Reads a stage's [config] table: the image's runtime configuration (image-spec config.md).

#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

#include <string>

namespace factory::recipe::detail {

// `label` names the table in messages ("[config]", "[stage.x.config]").
// Throws factory::Error (usage) on an unknown key or an invalid value.
ImageConfig read_config(Reader& reader, const toml::table& table, const std::string& label);

} // namespace factory::recipe::detail
