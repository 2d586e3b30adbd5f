#pragma once
// A Debian base's side of the lock file (lock.hpp): its spec as the recipe and host say it, and
// the packages a bootstrapped base holds, read from its layer in the store.

#include <map>
#include <optional>
#include <string>

#include "factory/builder/builder.hpp"
#include "factory/recipe/lockfile.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/sources/debian.hpp"

namespace factory::builder {

struct StepRef;

// The stage's debian base as mmdebstrap gets it: the mirror resolved (the recipe's, else the
// host's), the architecture in Debian's spelling.
sources::DebianSpec debian_spec(const recipe::Stage& stage, const recipe::Recipe& recipe);

// "name=version\n" lines (sources::resolved_packages) → name → version.
std::map<std::string, std::string> package_map(const std::string& lines);

// What a bootstrapped base was made of: its packages, and the mirror's Release date when it
// was bootstrapped ("" for a base built before factory recorded it).
struct StoredDebian {
    std::map<std::string, std::string> packages;
    std::string release_date;
};

// The base layer recorded for the stage's debian base (its key as a build computes it):
// packages read from its layer, the Release date from its record; nullopt when the store has
// no record of it. Throws Error: the layer unreadable.
std::optional<StoredDebian> stored_debian(const recipe::Recipe& recipe, const StepRef& base,
                                          const BuildOptions& options);

// Under --locked, before a bootstrap: the error message when the mirror's Release date is not
// the pinned one (the mirror moved on, so its packages may have), naming both dates, a snapshot
// mirror that keeps the pinned one, and `factory lock --update ID RECIPE`; "" when they match
// or the pin has no date.
std::string release_drift(const recipe::Pin& pin, const std::string& mirror, const std::string& now,
                          const std::string& recipe_file);

// Under --locked, after a bootstrap: every package whose version is not the pinned one, as
// "ID: debian package NAME: PINNED → INSTALLED" ("(none)" for one missing on either side).
std::vector<std::string> package_drift(const std::string& id,
                                       const std::map<std::string, std::string>& pinned,
                                       const std::map<std::string, std::string>& installed);

} // namespace factory::builder
