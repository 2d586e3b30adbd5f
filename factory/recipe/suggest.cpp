#include "factory/recipe/suggest.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace factory::recipe::detail {

namespace {

// Words longer than this are never "close" to a key: it bounds the O(n·m) distance.
constexpr std::size_t max_compared_length = 64;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::size_t levenshtein(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            std::size_t substitution = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
            row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string escaped(std::string_view value, char quote) {
    constexpr std::size_t max_shown = 80;
    std::string out(1, quote);
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (i == max_shown) {
            out += "…";
            break;
        }
        auto c = static_cast<unsigned char>(value[i]);
        if (c == static_cast<unsigned char>(quote) || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    out += quote;
    return out;
}

} // namespace

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
    if (word.empty() || word.size() > max_compared_length) return {};
    std::string w = lower(word);
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& candidate : candidates) {
        if (candidate.size() > max_compared_length) continue;
        std::size_t d = levenshtein(w, lower(candidate));
        std::size_t limit = std::min<std::size_t>(2, std::max(w.size(), candidate.size()) / 2);
        if (d <= limit && d < best_distance) {
            best = candidate;
            best_distance = d;
        }
    }
    return best;
}

std::string join_list(const std::vector<std::string>& items, std::size_t max) {
    if (items.empty()) return "none";
    std::string out;
    for (std::size_t i = 0; i < items.size() && i < max; ++i) {
        if (i) out += ", ";
        out += items[i];
    }
    if (items.size() > max) out += ", … (" + std::to_string(items.size() - max) + " more)";
    return out;
}

std::string quote(std::string_view value) {
    return escaped(value, '"');
}

std::string quote_key(std::string_view key) {
    return escaped(key, '\'');
}

} // namespace factory::recipe::detail
