#include "factory/recipe/reader.hpp"

#include "factory/recipe/expand.hpp"
#include "factory/recipe/suggest.hpp"
#include "factory/util/error.hpp"

#include <algorithm>

namespace factory::recipe::detail {

namespace {

// A recipe is at most 1 MiB, but ${ARG} can multiply it: cap what expansion may produce, per
// string and in total, so a hostile recipe can't exhaust memory.
constexpr std::size_t max_expanded_string = 1u << 20;
constexpr std::size_t max_expanded_total = 16u << 20;

// [image]\nname = "x"\nbase = "scratch": in TOML, base is [image].base. True for a top-level
// key found in a table a top-level [header] opens, where that is the likely mistake.
bool misplaced_top_level_key(const toml::table& table, const std::string& table_label,
                             std::string_view key) {
    if (table.is_inline()) return false;
    static const std::vector<std::string> header_tables = {"[image]", "[base]", "[config]",
                                                           "[[step]]", "[shell]"};
    return std::find(header_tables.begin(), header_tables.end(), table_label) !=
               header_tables.end() &&
           std::find(top_level_keys.begin(), top_level_keys.end(), key) != top_level_keys.end();
}

std::string with_hint(std::string message, std::string_view hint) {
    if (!hint.empty()) message += " (" + std::string(hint) + ")";
    return message;
}

} // namespace

std::string type_name(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::table:
        return "a table";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a float";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    case toml::node_type::none:
        break;
    }
    return "nothing";
}

std::string key_text(std::string_view key) {
    bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
    return bare ? std::string(key) : quote(key);
}

std::string key_label(const std::string& table_label, std::string_view key) {
    if (table_label.empty()) return std::string(key);
    return table_label + " " + std::string(key);
}

bool before(const Location& a, const Location& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
}

std::vector<std::pair<const toml::key*, const toml::node*>>
in_recipe_order(const toml::table& table) {
    std::vector<std::pair<const toml::key*, const toml::node*>> entries;
    for (auto&& [key, node] : table)
        entries.emplace_back(&key, &node);
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
        const auto& x = a.first->source().begin;
        const auto& y = b.first->source().begin;
        return std::pair(x.line, x.column) < std::pair(y.line, y.column);
    });
    return entries;
}

Reader::Reader(std::string file, std::filesystem::path dir)
    : file_(std::move(file)), dir_(std::move(dir)) {}

Location Reader::at(const toml::source_region& region) const {
    return Location{file_, static_cast<int>(region.begin.line),
                    static_cast<int>(region.begin.column)};
}

Location Reader::at(const toml::key& key, const toml::node& node) const {
    Location k = at(key), n = at(node);
    if (n.line == 0) return k;
    return before(n, k) ? n : k;
}

void Reader::fail(const Location& where, const std::string& message) const {
    throw usage_error(where.str() + ": " + message);
}

void Reader::check_keys(const toml::table& table, const std::string& table_label,
                        const std::vector<std::string>& known) const {
    for (auto&& [key, node] : in_recipe_order(table)) {
        if (std::find(known.begin(), known.end(), key->str()) != known.end()) continue;
        std::string message = table_label.empty()
                                  ? "unknown top-level key " + quote_key(key->str())
                                  : "unknown key " + quote_key(key->str()) + " in " + table_label;
        if (misplaced_top_level_key(table, table_label, key->str()))
            message += "; a top-level key must come before the first [table] header";
        else if (auto guess = closest(key->str(), known); !guess.empty())
            message += "; did you mean " + quote_key(guess) + "?";
        fail(*key, message);
    }
}

std::string Reader::string(const toml::node& node, const std::string& label, std::string_view hint,
                           ArgRefs refs) {
    const auto* value = node.as_string();
    if (!value) fail(node, with_hint(label + ": expected a string, got " + type_name(node), hint));
    return expand(value->get(), node, label, refs);
}

std::string Reader::expand(std::string_view text, const toml::node& node, const std::string& label,
                           ArgRefs refs) {
    std::string out;
    if (text.find('$') == std::string_view::npos) {
        out = text;
    } else {
        out = expand_args(text, args_, max_expanded_string, at(node).str() + ": " + label + ": ",
                          refs);
        expanded_bytes_ += out.size();
        if (expanded_bytes_ > max_expanded_total)
            fail(node, label + ": ${ARG} expansions exceed " +
                           std::to_string(max_expanded_total >> 20) + " MiB in total");
    }
    if (out.find('\0') != std::string::npos) fail(node, label + ": contains a NUL character");
    return out;
}

std::int64_t Reader::integer(const toml::node& node, const std::string& label,
                             std::string_view hint) const {
    const auto* value = node.as_integer();
    if (!value)
        fail(node, with_hint(label + ": expected an integer, got " + type_name(node), hint));
    return value->get();
}

bool Reader::boolean(const toml::node& node, const std::string& label) const {
    const auto* value = node.as_boolean();
    if (!value) fail(node, label + ": expected a boolean, got " + type_name(node));
    return value->get();
}

const toml::table& Reader::table(const toml::node& node, const std::string& label) const {
    const auto* value = node.as_table();
    if (!value) fail(node, label + ": expected a table, got " + type_name(node));
    return *value;
}

const toml::array& Reader::array(const toml::node& node, const std::string& label,
                                 std::string_view hint) const {
    const auto* value = node.as_array();
    if (!value) fail(node, with_hint(label + ": expected an array, got " + type_name(node), hint));
    return *value;
}

std::vector<Located> Reader::strings(const toml::node& node, const std::string& label,
                                     std::string_view hint, ArgRefs refs) {
    const auto* array = node.as_array();
    if (!array)
        fail(node,
             with_hint(label + ": expected an array of strings, got " + type_name(node), hint));
    std::vector<Located> out;
    out.reserve(array->size());
    for (const auto& element : *array)
        out.push_back(Located{string(element, label, {}, refs), at(element)});
    return out;
}

std::vector<Entry> Reader::string_table(const toml::node& node, const std::string& label) {
    const auto& t = table(node, label);
    std::vector<Entry> out;
    for (auto&& [key, value] : in_recipe_order(t)) {
        std::string entry_label = label + "." + key_text(key->str());
        out.push_back(
            Entry{std::string(key->str()), string(*value, entry_label), at(*key), at(*value)});
    }
    return out;
}

} // namespace factory::recipe::detail
