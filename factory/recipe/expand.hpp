#pragma once
// ${NAME} expansion of recipe strings.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace factory::recipe::detail {

enum class ArgRefs {
    strict,        // every ${…} must name a declared arg
    declared_only, // run strings: ${NAME} of a declared arg is replaced; any other ${…} (a
                   // shell variable, ${A:-x}, an unterminated "${") is kept for the shell
};

// Replaces every ${NAME} in `text` by args[NAME]; "$${" stands for a literal "${". A lone
// '$' (or "$$" not followed by '{') is kept as is. The substituted text is not expanded again.
// Throws factory::Error (usage) with the message prefixed by `where` ("file:1:2: [image]
// name: ") on an unterminated "${", an invalid name, an undeclared arg, or a result longer
// than `max_size` bytes. With ArgRefs::declared_only only the size is an error: "$${" is still
// a literal "${", and everything else not a declared ${NAME} is kept as written.
std::string expand_args(std::string_view text, const std::map<std::string, std::string>& args,
                        std::size_t max_size, const std::string& where,
                        ArgRefs refs = ArgRefs::strict);

} // namespace factory::recipe::detail
