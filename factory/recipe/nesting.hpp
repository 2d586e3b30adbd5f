#pragma once
// A lexical pre-scan that bounds how deeply a TOML document nests tables and arrays, run
// before toml++ sees the text.
//
// Why: toml++ 3.3 caps nested *values* (arrays, inline tables) at 256 but not dotted keys or
// table headers: "a.a.a.…a = 1" with 40 000 components overflows the stack (in the parser
// and in the tree's recursive destructor). A recipe needs fewer than ten levels.

#include <optional>
#include <string_view>

namespace factory::recipe::detail {

struct TextPosition {
    int line = 0;
    int column = 0;
};

// The depth limit recipes are held to; far above any real recipe, far below a crash.
inline constexpr int max_nesting = 64;

// Returns where the text first exceeds `limit` levels, or nullopt. It over-counts rather
// than under-counts: a dotted key or header of n parts is n + 1 levels, each '{' or '[' one
// more, plus the parts of the key it is the value of.
// Strings and comments are skipped as TOML defines them; the scan never fails otherwise —
// malformed TOML is toml++'s to report.
std::optional<TextPosition> find_excess_nesting(std::string_view text, int limit = max_nesting);

} // namespace factory::recipe::detail
