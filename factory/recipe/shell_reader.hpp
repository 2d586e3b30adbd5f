#pragma once
// Reads [shell]: the defaults of `factory shell` for the recipe's image.

#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

namespace factory::recipe::detail {

// `node` is the value of the top-level key `shell`, `where` the table's place. Throws
// factory::Error (usage) on an unknown key or an invalid value.
ShellConfig read_shell_config(Reader& reader, const toml::node& node, const Location& where);

} // namespace factory::recipe::detail
