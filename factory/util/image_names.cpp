#include "factory/util/image_names.hpp"

#include <algorithm>

namespace factory {

namespace {

bool lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool alnum(char c) {
    return lower_alnum(c) || (c >= 'A' && c <= 'Z');
}
bool digit(char c) {
    return c >= '0' && c <= '9';
}
bool hex(char c) {
    return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_port(std::string_view p) {
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), digit)) return false;
    unsigned v = 0;
    for (char c : p)
        v = v * 10 + static_cast<unsigned>(c - '0');
    return v <= 65535;
}

} // namespace

bool is_path_component(std::string_view c) noexcept {
    std::size_t i = 0;
    for (;;) {
        std::size_t start = i;
        while (i < c.size() && lower_alnum(c[i]))
            ++i;
        if (i == start) return false;
        if (i == c.size()) return true;
        if (c[i] == '.') {
            ++i;
        } else if (c[i] == '_') {
            ++i;
            if (i < c.size() && c[i] == '_') ++i;
        } else if (c[i] == '-') {
            while (i < c.size() && c[i] == '-')
                ++i;
        } else {
            return false;
        }
    }
}

// domain-component := [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool is_domain_component(std::string_view c) noexcept {
    if (c.empty() || !alnum(c.front()) || !alnum(c.back())) return false;
    return std::all_of(c.begin(), c.end(), [](char ch) { return alnum(ch) || ch == '-'; });
}

bool is_image_tag(std::string_view t) noexcept {
    if (t.empty() || t.size() > 128 || !(alnum(t[0]) || t[0] == '_')) return false;
    return std::all_of(t.begin(), t.end(),
                       [](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool is_registry_host(std::string_view h) noexcept {
    // An IPv6 literal has colons inside its brackets; the port's colon follows the ']'.
    auto colon = h.rfind(':');
    if (colon != std::string_view::npos && h.find(']', colon) == std::string_view::npos) {
        if (!is_port(h.substr(colon + 1))) return false;
        h = h.substr(0, colon);
    }
    if (h.starts_with('[')) {
        if (h.size() < 3 || !h.ends_with(']')) return false;
        auto inner = h.substr(1, h.size() - 2);
        return std::all_of(inner.begin(), inner.end(),
                           [](char c) { return hex(c) || c == ':' || c == '.'; });
    }
    std::size_t start = 0;
    for (;;) {
        auto dot = h.find('.', start);
        auto comp = h.substr(start, dot == std::string_view::npos ? h.npos : dot - start);
        if (!is_domain_component(comp)) return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

bool names_a_registry(std::string_view first) noexcept {
    return first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
           first.starts_with('[');
}

} // namespace factory
