#include "factory/recipe/shell_reader.hpp"

#include "factory/recipe/config_reader.hpp"
#include "factory/recipe/grammar.hpp"
#include "factory/recipe/suggest.hpp"

#include <set>

namespace factory::recipe::detail {

namespace {

const std::string label = "[shell]";

std::map<std::string, std::string> read_volumes(Reader& r, const toml::node& node) {
    std::string volumes_label = label + " volumes";
    std::map<std::string, std::string> volumes;
    std::set<std::string> paths;
    for (auto&& [key, value] : in_recipe_order(r.table(node, volumes_label))) {
        std::string name(key->str());
        if (!is_mount_id(name))
            r.fail(*key, volumes_label + ": invalid volume name " + quote_key(name) +
                             " (expected [A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\")");
        std::string entry_label = volumes_label + "." + key_text(name);
        std::string written = read_absolute(r, *value, entry_label);
        std::string path = normalize_absolute(written);
        if (path == "/")
            r.fail(*value, entry_label + ": can't mount over the root: " + quote(written));
        if (!paths.insert(path).second)
            r.fail(*value, entry_label + ": another volume is mounted at " + quote(path));
        volumes.emplace(std::move(name), std::move(path));
    }
    return volumes;
}

std::vector<std::string> read_passthrough(Reader& r, const toml::node& node) {
    std::string passthrough_label = label + " env_passthrough";
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (auto& item :
         r.strings(node, passthrough_label, "write env_passthrough = [\"SSH_AUTH_SOCK\"]")) {
        if (!is_env_name(item.value))
            r.fail(item.where, passthrough_label + ": invalid variable name " + quote(item.value) +
                                   ": expected [A-Za-z_][A-Za-z0-9_]*");
        if (!seen.insert(item.value).second)
            r.fail(item.where, passthrough_label + ": duplicate variable " + quote(item.value));
        names.push_back(std::move(item.value));
    }
    return names;
}

ShellConfig::Home read_home(Reader& r, const toml::node& node) {
    std::string home = r.string(node, label + " home");
    if (home == "persistent") return ShellConfig::Home::persistent;
    if (home == "host") return ShellConfig::Home::host;
    r.fail(node,
           label + " home: unknown home " + quote(home) + " (expected \"persistent\" or \"host\")");
}

} // namespace

ShellConfig read_shell_config(Reader& r, const toml::node& node, const Location& where) {
    const auto& t = r.table(node, label);
    r.check_keys(t, label, {"volumes", "env_passthrough", "hostname", "home"});
    ShellConfig shell;
    shell.where = where;
    if (const auto* volumes = t.get("volumes")) shell.volumes = read_volumes(r, *volumes);
    if (const auto* names = t.get("env_passthrough"))
        shell.env_passthrough = read_passthrough(r, *names);
    if (const auto* hostname = t.get("hostname")) {
        shell.hostname = r.string(*hostname, label + " hostname");
        if (!is_hostname(shell.hostname))
            r.fail(*hostname, label + " hostname: invalid host name " + quote(shell.hostname) +
                                  ": expected letters, digits and '-' in labels of at most 63 "
                                  "characters joined by '.' (RFC 1123)");
    }
    if (const auto* home = t.get("home")) shell.home = read_home(r, *home);
    return shell;
}

} // namespace factory::recipe::detail
