#pragma once
// A copy step → the entries of its layer. Sources come from the recipe's context, a named
// context ([contexts]) or another stage's Tree. Every host source is resolved inside its root:
// a path or symlink that leads out is an error, never followed.

#include <filesystem>
#include <functional>
#include <map>

#include <sys/stat.h>
#include <string>
#include <vector>

#include "factory/builder/tree.hpp"
#include "factory/layer/entry.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/util/pattern.hpp"

namespace factory::builder {

struct CopyContext {
    std::filesystem::path context;       // the recipe's context directory
    const IgnoreRules* ignore = nullptr; // applies to `context` only
    const std::map<std::string, std::filesystem::path>* named = nullptr; // [contexts]
    std::function<const Tree*(const std::string&)> stage_tree;           // a finished stage's tree
    const Tree* lower = nullptr; // the stage so far: parent directories keep its metadata
    // When set, receives one lstat per planned entry, at the entry's index: that of the host
    // file it is read from (st_mode 0 for every other entry), so hashing can consult the stat
    // cache without a second stat.
    std::vector<struct stat>* stats = nullptr;
    // Threads walking a host directory (host_walk.hpp; 0: one per core): more than one lists
    // and lstats its directories ahead of the planner; the plan is the same.
    unsigned threads = 1;
    // When set, a file copied `from` a stage whose content digest its tree knows (a layer's
    // listing) is planned without its content: the entry has that sha256 and no source, and
    // its destination path is entered here, to be taken out of the layer only if the step is
    // made. Otherwise every such file is extracted while planning.
    std::map<std::string, TreeContent>* content_later = nullptr;
};

// Throws Error (ExitCode::usage) naming the recipe location for a missing or escaping
// source, and Error (failure) for I/O errors.
std::vector<layer::Entry> plan_copy(const recipe::Step& step, const CopyContext& ctx);

// The rules of the recipe's ignore file (none when it has none). Throws Error (usage).
IgnoreRules recipe_ignore_rules(const recipe::Recipe& recipe);

// While planning, before anything runs: every literal source of the step's host items (the
// context, a named context) is not ignored, exists and stays inside its root; else the error
// plan_copy gives (ExitCode::usage, the item's location). A glob is left to plan_copy: it
// needs a walk, and a few realpath() calls are all this costs.
void check_host_sources(const recipe::Step& step, const CopyContext& ctx);

// Normalized permission bits of a copied file when the recipe gives none: 0755 if any exec
// bit is set, else 0644 (the checkout's umask must not reach the image).
unsigned normalized_mode(unsigned host_mode, bool is_dir);

} // namespace factory::builder
