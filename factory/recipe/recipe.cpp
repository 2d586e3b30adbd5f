#include "factory/recipe/recipe.hpp"

namespace factory::recipe {

std::string Location::str() const {
    if (line <= 0) return file;
    return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::vector<std::string> RunStep::argv() const {
    if (form == Form::exec) return exec;
    std::vector<std::string> out = shell;
    out.push_back(script);
    return out;
}

} // namespace factory::recipe
