#pragma once
// Small string predicates shared by every module.

#include <string_view>

namespace factory {

// True for a non-empty string of ASCII digits only ("007" yes; "", "-1", "1e3", " 1" no).
bool all_digits(std::string_view s) noexcept;

} // namespace factory
