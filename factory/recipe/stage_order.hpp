#pragma once
// Puts a recipe's stages in dependency order.

#include "factory/recipe/reader.hpp"
#include "factory/recipe/recipe.hpp"

#include <vector>

namespace factory::recipe::detail {

// Returns `stages` (given in declaration order, every reference already known to name one
// of them) reordered so that each stage comes after the stages it uses — its base
// "stage:NAME" and the `from` of its copies — keeping declaration order otherwise
// (a depth-first post-order). Throws factory::Error (usage) at the reference that closes a
// cycle: "stages form a cycle: a -> b -> a". Iterative, so a long chain can't overflow the
// stack.
std::vector<Stage> order_stages(std::vector<Stage> stages, const Reader& reader);

} // namespace factory::recipe::detail
