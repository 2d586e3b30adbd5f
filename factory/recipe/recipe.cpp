#include "factory/recipe/recipe.hpp"

namespace factory::recipe {

std::string Location::str() const {
    if (line <= 0) return file;
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

} // namespace factory::recipe
