#include "factory/util/strings.hpp"

#include <algorithm>

namespace factory {

bool all_digits(std::string_view s) noexcept {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace factory
