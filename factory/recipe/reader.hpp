#pragma once
// Type-checked access to a parsed TOML tree, with every error located ("file:line:col: ")
// and every string ${ARG}-expanded. Internal to the recipe module.

#include "factory/recipe/expand.hpp"
#include "factory/recipe/recipe.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <utility>
#include <vector>

namespace factory::recipe::detail {

using Args = std::map<std::string, std::string>;

// A string-valued entry of an open table ([config] env, labels, annotations, …).
struct Entry {
    std::string key;
    std::string value;
    Location key_where;
    Location where; // of the value
};

// A string with where it was written, for checks after expansion.
struct Located {
    std::string value;
    Location where;
};

// The keys of a recipe's top-level table.
inline const std::vector<std::string> top_level_keys = {"image", "args",   "contexts", "base",
                                                        "step",  "config", "stage",    "shell"};

// "an integer", "a string", "a table", …
std::string type_name(const toml::node& node);

// A key as TOML would write it: bare if it can be, else in double quotes.
std::string key_text(std::string_view key);

// "[image] epoch"; a key of the top-level table is named bare ("base").
std::string key_label(const std::string& table_label, std::string_view key);

// True if `a` comes before `b` in the recipe.
bool before(const Location& a, const Location& b);

// The entries of a table in the order the recipe wrote them (toml++ keeps them sorted).
std::vector<std::pair<const toml::key*, const toml::node*>> in_recipe_order(const toml::table&);

class Reader {
  public:
    // `file` is the recipe path as the user gave it (it starts every message); `dir` the
    // recipe's directory, absolute.
    Reader(std::string file, std::filesystem::path dir);

    const std::string& file() const { return file_; }
    const std::filesystem::path& dir() const { return dir_; }
    // The args ${NAME} expands to; set once [args] and the overrides are known.
    void set_args(Args args) { args_ = std::move(args); }
    const Args& args() const { return args_; }

    Location at(const toml::source_region& region) const;
    Location at(const toml::node& node) const { return at(node.source()); }
    Location at(const toml::key& key) const { return at(key.source()); }
    // The earlier of a key and its value: the header of [table], the key of key = value.
    Location at(const toml::key& key, const toml::node& node) const;

    // Throws factory::Error (usage): "<where>: <message>".
    [[noreturn]] void fail(const Location& where, const std::string& message) const;
    template <class T> [[noreturn]] void fail(const T& where, const std::string& message) const {
        fail(at(where), message);
    }

    // Throws for a key not in `known` ("unknown key 'tagz' in [image]; did you mean 'tags'?").
    // A top-level key found in a [table] gets a hint about TOML's scoping instead.
    void check_keys(const toml::table& table, const std::string& table_label,
                    const std::vector<std::string>& known) const;

    // Values of one type, or a "<label>: expected X, got Y" error (plus `hint`, if any).
    // Strings are ${ARG}-expanded (`refs`: how strictly) and may not contain NUL.
    std::string string(const toml::node& node, const std::string& label, std::string_view hint = {},
                       ArgRefs refs = ArgRefs::strict);
    std::int64_t integer(const toml::node& node, const std::string& label,
                         std::string_view hint = {}) const;
    bool boolean(const toml::node& node, const std::string& label) const;
    const toml::table& table(const toml::node& node, const std::string& label) const;
    const toml::array& array(const toml::node& node, const std::string& label,
                             std::string_view hint = {}) const;
    std::vector<Located> strings(const toml::node& node, const std::string& label,
                                 std::string_view hint = {}, ArgRefs refs = ArgRefs::strict);
    // A table whose keys are free (env, labels): every value a string, in recipe order.
    std::vector<Entry> string_table(const toml::node& node, const std::string& label);

    // ${ARG}-expands a string read from `node` (a plain string: [args] values are literal).
    std::string expand(std::string_view text, const toml::node& node, const std::string& label,
                       ArgRefs refs = ArgRefs::strict);

  private:
    std::string file_;
    std::filesystem::path dir_;
    Args args_;
    std::size_t expanded_bytes_ = 0; // output of expansions so far, capped
};

} // namespace factory::recipe::detail
