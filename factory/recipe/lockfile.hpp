#pragma once
// A recipe's lock file (RECIPE.lock, docs/lockfile.md): what every step that reads the outside
// world resolved to when `factory lock` ran — a registry base's manifest digest, a git step's
// commit, a download's URL and sha256, a Debian base's mirror, suite and installed packages.
//
//   # Pins of app.toml for `factory build --locked` (docs/lockfile.md).
//
//   [main.2]
//   kind = "git"
//   commit = "1a2b…"
//   ref = "main"
//   url = "git://127.0.0.1/app.git"
//
// One table per pinned item, keyed STAGE.STEP (STEP = "base" or the step's 1-based position),
// in a fixed order (stages bytewise, then base before steps, steps by number), `kind` first and
// then the fields bytewise, a Debian base's packages in their own sub-table: the same pins
// always give the same bytes, and a moved pin is a one-line diff.

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace factory::recipe {

struct Pin {
    std::string stage;
    int step = 0;     // 0: the stage's base; else the step's 1-based position
    std::string kind; // "registry", "debian", "git", "download"
    // What the item was resolved to, and what the recipe said when it was: a field name is
    // [a-z0-9-]+, a value any string.
    std::map<std::string, std::string> fields;
    std::map<std::string, std::string> packages; // a Debian base: name → version

    // "main.base", "main.2"
    std::string id() const;
    // A field's value, "" when absent.
    std::string field(const std::string& name) const;
};

// The order of a lock file's tables: by stage, then base, then step number.
bool pin_before(const Pin& a, const Pin& b);

struct Lockfile {
    std::vector<Pin> pins; // in pin_before order, ids unique

    // The pin with this id, or nullptr.
    const Pin* find(std::string_view id) const;
    // Adds or replaces the pin of the same id, keeping the order.
    void put(Pin pin);
};

// RECIPE.lock beside the recipe: "app.toml" → "app.toml.lock".
std::filesystem::path lockfile_path(const std::filesystem::path& recipe);

// The lock file's text: a header comment naming the recipe (its file name), then the tables.
std::string lockfile_text(const Lockfile& lock, const std::string& recipe_name);

// Parses a lock file's text; `file` names it in errors. Throws Error (ExitCode::usage)
// "file:line:col: why" for invalid TOML, a table that is not STAGE.STEP, a field that is not a
// string, a missing or unknown kind, a duplicate pin, a resolved field that is malformed (a
// git commit or name, a download's sha256, a registry digest, a Debian release-date) or
// missing (a git pin's commit, a registry pin's digest).
Lockfile parse_lockfile(std::string_view text, const std::string& file);

// Reads and parses `file`. Throws Error (ExitCode::usage): missing or unreadable ("… (run
// factory lock RECIPE)"), or parse_lockfile's errors.
Lockfile read_lockfile(const std::filesystem::path& file);

} // namespace factory::recipe
