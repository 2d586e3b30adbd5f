#include "factory/recipe/lockfile.hpp"

#include <algorithm>
#include <cstdio>
#include <toml++/toml.h>

#include "factory/recipe/grammar.hpp"
#include "factory/recipe/reader.hpp"
#include "factory/util/error.hpp"
#include "factory/util/files.hpp"

namespace factory::recipe {

namespace {

const std::vector<std::string> pin_kinds = {"debian", "download", "git", "registry"};

bool is_field_name(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
}

// A TOML basic string: quotes, backslashes and control characters escaped, the rest as is.
std::string toml_string(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// "base" → 0, "3" → 3, anything else → -1.
int parse_step(std::string_view s) {
    if (s == "base") return 0;
    if (s.empty() || s.size() > 6 || s[0] == '0') return -1;
    int n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
    }
    return n;
}

void read_fields(detail::Reader& r, const toml::table& t, const std::string& label, Pin& pin) {
    for (auto&& [key, node] : detail::in_recipe_order(t)) {
        std::string name(key->str());
        if (name == "packages") {
            if (pin.kind != "debian") r.fail(*key, label + ": only a debian pin has packages");
            for (auto&& [pkg, version] : r.table(*node, label + ".packages")) {
                if (!version.is_string())
                    r.fail(version, label + ".packages." + detail::key_text(pkg.str()) +
                                        ": expected a string, got " + detail::type_name(version));
                pin.packages[std::string(pkg.str())] = std::string(version.as_string()->get());
            }
            continue;
        }
        if (!is_field_name(name))
            r.fail(*key, label + ": invalid field name " + detail::key_text(name));
        if (!node->is_string())
            r.fail(*node,
                   label + "." + name + ": expected a string, got " + detail::type_name(*node));
        if (name != "kind") pin.fields[name] = std::string(node->as_string()->get());
    }
}

bool is_hex(std::string_view s, std::size_t size) {
    return s.size() == size && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// "2024-11-09T10:12:04Z", as debian_release writes it.
bool is_utc_time(std::string_view s) {
    static constexpr std::string_view shape = "dddd-dd-ddTdd:dd:ddZ";
    if (s.size() != shape.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) return false;
    return true;
}

// What a resolved field must look like, or "" when its value is one (a hand edit is caught
// here, with its position, not by the build that would use it).
std::string field_problem(const std::string& kind, const std::string& name,
                          const std::string& value) {
    if (kind == "git" && name == "commit" && !is_hex(value, 40))
        return "is not a commit id (40 lower-case hex digits)";
    if (kind == "git" && name == "name" && value != "HEAD" && !value.starts_with("refs/"))
        return "is not a full ref name (refs/heads/BRANCH, refs/tags/TAG or HEAD)";
    if (kind == "download" && name == "sha256" && !is_hex(value, 64))
        return "is not a sha256 (64 lower-case hex digits)";
    if (kind == "registry" && name == "digest" &&
        !(value.starts_with("sha256:") && is_hex(std::string_view(value).substr(7), 64)))
        return "is not a manifest digest (sha256: and 64 lower-case hex digits)";
    if (kind == "debian" && name == "release-date" && !is_utc_time(value))
        return "is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)";
    return "";
}

// The fields every pin of its kind has: what it was resolved to. (A recipe-side field that is
// missing is drift, which --locked reports with the recipe's value.)
void check_pin(detail::Reader& r, const toml::table& t, const toml::node& node,
               const std::string& label, const Pin& pin) {
    // factory lock reads the file before it resolves anything: a pin it can't read has to be
    // mended by hand, or dropped so that it is resolved again as a new step's.
    std::string mend =
        "; correct it, or delete [" + label + "] and run factory lock to pin it again";
    for (const auto& [name, value] : pin.fields) {
        auto problem = field_problem(pin.kind, name, value);
        if (!problem.empty())
            r.fail(*t.get(name), label + "." + name + ": '" + value + "' " + problem + mend);
    }
    const char* required = pin.kind == "git" ? "commit" : pin.kind == "registry" ? "digest" : "";
    if (*required && !pin.fields.contains(required))
        r.fail(node, label + ": a " + pin.kind + " pin needs " + required + mend);
}

Pin read_pin(detail::Reader& r, const toml::key& stage, const toml::key& step,
             const toml::node& node) {
    std::string label = std::string(stage.str()) + "." + std::string(step.str());
    Pin pin;
    pin.stage = std::string(stage.str());
    pin.step = parse_step(step.str());
    if (!detail::is_stage_name(pin.stage))
        r.fail(stage, "invalid stage name " + detail::key_text(pin.stage));
    if (pin.step < 0)
        r.fail(step, label + ": expected STAGE.base or STAGE.N (the step's position)");
    const auto& t = r.table(node, label);
    auto* kind = t.get("kind");
    if (!kind) r.fail(node, label + ": missing kind");
    if (!kind->is_string())
        r.fail(*kind, label + ".kind: expected a string, got " + detail::type_name(*kind));
    pin.kind = std::string(kind->as_string()->get());
    if (std::find(pin_kinds.begin(), pin_kinds.end(), pin.kind) == pin_kinds.end())
        r.fail(*kind,
               label + ".kind: unknown kind '" + pin.kind + "' (debian, download, git, registry)");
    read_fields(r, t, label, pin);
    check_pin(r, t, node, label, pin);
    return pin;
}

} // namespace

std::string Pin::id() const {
    return stage + "." + (step == 0 ? std::string("base") : std::to_string(step));
}

std::string Pin::field(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
}

bool pin_before(const Pin& a, const Pin& b) {
    if (a.stage != b.stage) return a.stage < b.stage;
    return a.step < b.step;
}

const Pin* Lockfile::find(std::string_view id) const {
    for (const auto& p : pins)
        if (p.id() == id) return &p;
    return nullptr;
}

void Lockfile::put(Pin pin) {
    auto it = std::lower_bound(pins.begin(), pins.end(), pin, pin_before);
    if (it != pins.end() && it->stage == pin.stage && it->step == pin.step)
        *it = std::move(pin);
    else
        pins.insert(it, std::move(pin));
}

std::filesystem::path lockfile_path(const std::filesystem::path& recipe) {
    auto p = recipe;
    p += ".lock";
    return p;
}

std::string lockfile_text(const Lockfile& lock, const std::string& recipe_name) {
    std::string out = "# Pins of " + recipe_name +
                      " for `factory build --locked` (docs/lockfile.md).\n"
                      "# Written by `factory lock`; move one with `factory lock --update NAME`.\n";
    for (const auto& pin : lock.pins) {
        out += "\n[" + pin.id() + "]\nkind = " + toml_string(pin.kind) + "\n";
        for (const auto& [name, value] : pin.fields)
            out += name + " = " + toml_string(value) + "\n";
        if (pin.packages.empty()) continue;
        out += "\n[" + pin.id() + ".packages]\n";
        for (const auto& [name, version] : pin.packages)
            out += detail::key_text(name) + " = " + toml_string(version) + "\n";
    }
    return out;
}

Lockfile parse_lockfile(std::string_view text, const std::string& file) {
    detail::Reader r(file, std::filesystem::path("/"));
    toml::table root;
    try {
        root = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        r.fail(r.at(e.source()), std::string(e.description()));
    }
    Lockfile lock;
    for (auto&& [stage, node] : detail::in_recipe_order(root)) {
        const auto& steps = r.table(*node, std::string(stage->str()));
        for (auto&& [step, pin_node] : detail::in_recipe_order(steps)) {
            Pin pin = read_pin(r, *stage, *step, *pin_node);
            if (lock.find(pin.id())) r.fail(*step, pin.id() + ": pinned twice");
            lock.put(std::move(pin));
        }
    }
    return lock;
}

Lockfile read_lockfile(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec))
        throw usage_error(file.string() + ": no lock file (run factory lock " +
                          file.parent_path().append(file.stem().string()).string() + ")");
    auto text = read_file(file, 16u << 20);
    if (!text) throw usage_error("cannot read lock file: " + text.error());
    return parse_lockfile(*text, file.string());
}

} // namespace factory::recipe
