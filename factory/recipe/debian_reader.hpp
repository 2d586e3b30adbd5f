#pragma once
// Reads a Debian base: [base] debian = { suite = "bookworm", … }.

#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

#include <string>

namespace factory::recipe::detail {

// The image's platform, which a Debian base's architecture defaults to and must match.
struct Platform {
    std::string arch;    // GOARCH ("amd64", "arm")
    std::string variant; // "v7" or ""
};

// `node` is the value of `debian`; `label` names it ("[base] debian"). The mirror is left
// empty when unset (sources/debian.hpp resolves it on the host that builds). Throws
// factory::Error (usage) on any invalid value.
DebianBase read_debian(Reader& reader, const toml::node& node, const std::string& label,
                       const Platform& platform);

} // namespace factory::recipe::detail
