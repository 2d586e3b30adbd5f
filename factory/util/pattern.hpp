#pragma once
// Path patterns as .dockerignore and COPY sources spell them: Go's filepath.Match syntax
// (`*`, `?`, `[a-z]`, `[!a]`, `\` escapes) per path component, plus `**` for any number of
// components. Paths are relative, '/'-separated, without "." or ".." components.

#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"

namespace factory {

// True if `path` matches `pattern` as a whole. A malformed pattern (unclosed '[') never matches;
// check it first with validate_pattern().
bool path_match(std::string_view pattern, std::string_view path);
// An error message for a malformed pattern, or nothing.
Result<void> validate_pattern(std::string_view pattern);
bool has_glob_chars(std::string_view s);

// The rules of an ignore file (.dockerignore syntax): one pattern a line, `#` comments, `!`
// re-includes, leading and trailing '/' dropped. A path is ignored when the last rule
// matching it, or matching one of its parent directories, is not a negation.
class IgnoreRules {
  public:
    IgnoreRules() = default;
    // Throws Error(usage) naming `origin:line` for a malformed pattern.
    static IgnoreRules parse(std::string_view text, const std::string& origin);
    bool ignored(std::string_view path) const;
    bool empty() const noexcept { return rules_.empty(); }
    // True if some negated rule could re-include something below `dir`: then an ignored
    // directory must still be walked.
    bool may_reinclude_below(std::string_view dir) const;

  private:
    struct Rule {
        std::string pattern;
        std::vector<std::string> parts; // its components, split once
        bool negate = false;
    };
    std::vector<Rule> rules_;
};

// Lexically cleans a relative path: collapses "//" and "./", drops trailing '/'.
// Returns "" for the root. ".." components are kept (callers reject them).
std::string clean_relative(std::string_view path);

} // namespace factory
