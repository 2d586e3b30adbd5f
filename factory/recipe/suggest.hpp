#pragma once
// Helpers for error messages: "did you mean" suggestions, short lists, quoted values.

#include <string>
#include <string_view>
#include <vector>

namespace factory::recipe::detail {

// The candidate closest to `word` (case-insensitive Levenshtein distance of at most 2, and at
// most half the longer word's length), or "" when none is close. Ties go to the earlier
// candidate, so callers list candidates in their preferred order.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// "a, b, c" — at most `max` items, then ", … (N more)"; "none" when empty.
std::string join_list(const std::vector<std::string>& items, std::size_t max = 10);

// A value as it appears in a message: in double quotes, with control characters, quotes
// and backslashes escaped, and cut to about 80 bytes so that a hostile recipe can't make
// the message huge.
std::string quote(std::string_view value);

// The same in single quotes, for keys and names: 'tagz'.
std::string quote_key(std::string_view key);

} // namespace factory::recipe::detail
