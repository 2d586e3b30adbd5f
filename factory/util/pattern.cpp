#include "factory/util/pattern.hpp"

#include <algorithm>
#include <optional>
#include <span>

namespace factory {

namespace {

std::vector<std::string_view> split_components(std::string_view path) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (start <= path.size()) {
        auto end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        if (end > start) out.push_back(path.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

// Matches a character class starting after '['; advances `p`. Returns nullopt if malformed.
std::optional<bool> match_class(std::string_view pat, std::size_t& p, char c) {
    bool negate = false;
    if (p < pat.size() && (pat[p] == '!' || pat[p] == '^')) {
        negate = true;
        ++p;
    }
    bool matched = false;
    bool first = true;
    while (p < pat.size() && (first || pat[p] != ']')) {
        first = false;
        char lo = pat[p++];
        if (lo == '\\') {
            if (p >= pat.size()) return std::nullopt;
            lo = pat[p++];
        }
        char hi = lo;
        if (p + 1 < pat.size() && pat[p] == '-' && pat[p + 1] != ']') {
            hi = pat[p + 1];
            p += 2;
            if (hi == '\\') {
                if (p >= pat.size()) return std::nullopt;
                hi = pat[p++];
            }
        }
        if (lo <= c && c <= hi) matched = true;
    }
    if (p >= pat.size()) return std::nullopt; // no closing ']'
    ++p;
    return matched != negate;
}

// One component against one pattern component (no '/'), with backtracking over '*'.
bool match_component(std::string_view pat, std::string_view name) {
    std::size_t p = 0, n = 0, star_p = std::string_view::npos, star_n = 0;
    while (n < name.size()) {
        if (p < pat.size()) {
            char pc = pat[p];
            if (pc == '*') {
                star_p = ++p;
                star_n = n;
                continue;
            }
            if (pc == '?') {
                ++p;
                ++n;
                continue;
            }
            if (pc == '[') {
                std::size_t q = p + 1;
                auto m = match_class(pat, q, name[n]);
                if (!m) return false;
                if (*m) {
                    p = q;
                    ++n;
                    continue;
                }
            } else {
                if (pc == '\\' && p + 1 < pat.size()) pc = pat[++p];
                if (pc == name[n]) {
                    ++p;
                    ++n;
                    continue;
                }
            }
        }
        if (star_p == std::string_view::npos) return false;
        p = star_p;
        n = ++star_n;
    }
    while (p < pat.size() && pat[p] == '*')
        ++p;
    return p == pat.size();
}

template <class Parts>
bool match_parts(const Parts& pat, std::size_t pi, std::span<const std::string_view> path,
                 std::size_t ni) {
    while (pi < pat.size()) {
        if (pat[pi] == "**") {
            // `**` matches zero or more components.
            for (std::size_t k = ni; k <= path.size(); ++k)
                if (match_parts(pat, pi + 1, path, k)) return true;
            return false;
        }
        if (ni >= path.size() || !match_component(pat[pi], path[ni])) return false;
        ++pi;
        ++ni;
    }
    return ni == path.size();
}

} // namespace

bool has_glob_chars(std::string_view s) {
    return s.find_first_of("*?[\\") != std::string::npos;
}

bool path_match(std::string_view pattern, std::string_view path) {
    return match_parts(split_components(pattern), 0, split_components(path), 0);
}

Result<void> validate_pattern(std::string_view pattern) {
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '\\') {
            if (++i >= pattern.size()) return Unexpected("trailing '\\' in pattern");
        } else if (pattern[i] == '[') {
            std::size_t q = i + 1;
            if (!match_class(pattern, q, 'a'))
                return Unexpected("unclosed '[' in pattern '" + std::string(pattern) + "'");
            i = q - 1;
        }
    }
    return {};
}

std::string clean_relative(std::string_view path) {
    std::string out;
    for (auto part : split_components(path)) {
        if (part == ".") continue;
        if (!out.empty()) out += '/';
        out += part;
    }
    return out;
}

IgnoreRules IgnoreRules::parse(std::string_view text, const std::string& origin) {
    IgnoreRules rules;
    int line_no = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++line_no;
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.remove_suffix(1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
            line.remove_prefix(1);
        if (line.empty() || line.front() == '#') continue;
        Rule rule;
        if (line.front() == '!') {
            rule.negate = true;
            line.remove_prefix(1);
        }
        rule.pattern = clean_relative(line);
        if (rule.pattern.empty()) continue;
        if (auto ok = validate_pattern(rule.pattern); !ok)
            throw usage_error(origin + ":" + std::to_string(line_no) + ": " + ok.error());
        for (auto part : split_components(rule.pattern))
            rule.parts.emplace_back(part);
        rules.rules_.push_back(std::move(rule));
    }
    return rules;
}

bool IgnoreRules::ignored(std::string_view path) const {
    bool result = false;
    auto parts = split_components(path);
    std::span<const std::string_view> all(parts);
    for (const auto& rule : rules_) {
        // A rule matches the path itself or any of its parent directories.
        for (std::size_t len = 1; len <= parts.size(); ++len) {
            if (match_parts(rule.parts, 0, all.first(len), 0)) {
                result = !rule.negate;
                break;
            }
        }
    }
    return result;
}

bool IgnoreRules::may_reinclude_below(std::string_view dir) const {
    return std::any_of(rules_.begin(), rules_.end(), [&](const Rule& r) {
        if (!r.negate) return false;
        // Conservative: a negation whose literal prefix is under (or above) dir.
        std::string_view lit = r.pattern;
        auto glob = lit.find_first_of("*?[\\");
        if (glob != std::string_view::npos) lit = lit.substr(0, glob);
        return lit.starts_with(dir) || std::string_view(dir).starts_with(lit);
    });
}

} // namespace factory
