#pragma once
// ${NAME} expansion of recipe strings.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace factory::recipe::detail {

// Replaces every ${NAME} in `text` by args[NAME]; "$${" stands for a literal "${". A lone
// '$' (or "$$" not followed by '{') is kept as is. The substituted text is not expanded again.
// Throws factory::Error (usage) with the message prefixed by `where` ("file:1:2: [image]
// name: ") on an unterminated "${", an invalid name, an undeclared arg, or a result longer
// than `max_size` bytes.
std::string expand_args(std::string_view text, const std::map<std::string, std::string>& args,
                        std::size_t max_size, const std::string& where);

} // namespace factory::recipe::detail
