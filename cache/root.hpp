#pragma once
// Where the store lives: --cache DIR, else $FACTORY_CACHE, else $XDG_CACHE_HOME/factory,
// else ~/.cache/factory.

#include <filesystem>
#include <string>

namespace factory::cache {

// `explicit_root` is the --cache value ("" if not given). Throws Error if no location can be
// derived (no HOME and nothing set).
std::filesystem::path store_root(const std::string& explicit_root);

} // namespace factory::cache
