#pragma once
// The store's sharded directories (actions/, blocks/): DIR/<hh>/<64 hex>SUFFIX, where hh is
// the first two hex digits of the name.

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace factory::cache {

// Calls fn(hex, path) for each entry of DIR/<hh>/ named 64 lower-case hex digits and `suffix`
// that lies in its own shard; other names are skipped. A missing directory has no entries.
void for_each_sharded(
    const std::filesystem::path& dir, std::string_view suffix,
    const std::function<void(const std::string& hex, const std::filesystem::path& path)>& fn);

} // namespace factory::cache
