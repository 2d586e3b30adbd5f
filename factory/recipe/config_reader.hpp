#pragma once
// Reads a stage's [config] table: the image's runtime configuration (image-spec config.md).

#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

#include <string>

namespace factory::recipe::detail {

// `label` names the table in messages ("[config]", "[stage.x.config]").
// Throws factory::Error (usage) on an unknown key or an invalid value.
ImageConfig read_config(Reader& reader, const toml::table& table, const std::string& label);

// The pieces RUN steps share with [config]; `label` names the value ("[[step]] env").
// env = { NAME = "value" }: names non-empty without '=', in recipe order.
std::vector<std::pair<std::string, std::string>> read_env(Reader& reader, const toml::node& node,
                                                          const std::string& label);
// An absolute path without a ".." component, as written.
std::string read_absolute(Reader& reader, const toml::node& node, const std::string& label);
// "uid[:gid]" or "name[:group]" (grammar.hpp is_user).
std::string read_user(Reader& reader, const toml::node& node, const std::string& label);

} // namespace factory::recipe::detail
