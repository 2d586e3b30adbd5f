#include "factory/recipe/run_reader.hpp"

#include "factory/recipe/config_reader.hpp"
#include "factory/recipe/grammar.hpp"
#include "factory/recipe/suggest.hpp"

#include <map>
#include <set>

namespace factory::recipe::detail {

namespace {

// Where each mount target and secret variable came from, so that a second use of one is an
// error at the second place: two mounts at one path would hide each other.
struct Claims {
    std::map<std::string, Location> targets;
    std::set<std::string> env; // step env names and secret variables
};

void claim_target(const Reader& r, Claims& claims, const std::string& target, const Location& where,
                  const std::string& label) {
    if (!claims.targets.emplace(target, where).second)
        r.fail(where, label + ": " + quote(target) + " is mounted twice in this step");
}

// A mount target: absolute, no "..", not the root; normalized so that "/a/" and "/a" are one.
std::string read_target(Reader& r, const toml::node& node, const std::string& label) {
    std::string path = read_absolute(r, node, label);
    std::string target = normalize_absolute(path);
    if (target == "/") r.fail(node, label + ": can't mount over the root: " + quote(path));
    return target;
}

std::string read_mount_id(Reader& r, const toml::node& node, const std::string& label,
                          std::string_view what) {
    std::string id = r.string(node, label);
    if (!is_mount_id(id))
        r.fail(node, label + ": invalid " + std::string(what) + " id " + quote(id) +
                         ": expected [A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\"");
    return id;
}

CacheMount::Sharing read_sharing(Reader& r, const toml::node& node, const std::string& label) {
    std::string sharing = r.string(node, label);
    if (sharing == "locked") return CacheMount::Sharing::locked;
    if (sharing == "shared" || sharing == "private")
        r.fail(node, label + ": sharing " + quote(sharing) +
                         " is not supported in this version (only \"locked\")");
    r.fail(node, label + ": unknown sharing " + quote(sharing) + " (expected \"locked\")");
}

CacheMount read_cache_mount(Reader& r, const toml::node& node, const std::string& label) {
    CacheMount mount;
    mount.where = r.at(node);
    if (node.is_string()) {
        mount.target = read_target(r, node, label);
        mount.id = mount.target;
        return mount;
    }
    const auto* t = node.as_table();
    if (!t)
        r.fail(node, label + ": expected a path or a table, got " + type_name(node) +
                         " (write cache = [\"/var/cache/apt\"] or cache = [{ target = "
                         "\"/root/.npm\", id = \"npm\" }])");
    r.check_keys(*t, label, {"target", "id", "sharing"});
    const auto* target = t->get("target");
    if (!target) r.fail(*t, "missing required key 'target' in " + label);
    mount.target = read_target(r, *target, label + ".target");
    mount.id = mount.target;
    if (const auto* id = t->get("id")) mount.id = read_mount_id(r, *id, label + ".id", "cache");
    if (const auto* sharing = t->get("sharing"))
        mount.sharing = read_sharing(r, *sharing, label + ".sharing");
    return mount;
}

// A value that may be one item or an array of them.
std::vector<const toml::node*> one_or_many(Reader& r, const toml::node& node,
                                           const std::string& label) {
    std::vector<const toml::node*> items;
    if (const auto* array = node.as_array()) {
        if (array->empty()) r.fail(node, label + ": needs at least one item");
        for (const auto& element : *array)
            items.push_back(&element);
    } else {
        items.push_back(&node);
    }
    return items;
}

std::vector<CacheMount> read_cache(Reader& r, const toml::node& node, const std::string& label,
                                   Claims& claims) {
    std::vector<CacheMount> mounts;
    std::map<std::string, Location> ids;
    for (const auto* item : one_or_many(r, node, label)) {
        auto mount = read_cache_mount(r, *item, label);
        claim_target(r, claims, mount.target, mount.where, label);
        // Each mount holds its id's lock for the run: the same id twice would wait for itself.
        if (!ids.emplace(mount.id, mount.where).second)
            r.fail(mount.where,
                   label + ": cache id " + quote(mount.id) + " is used twice in this step");
        mounts.push_back(std::move(mount));
    }
    return mounts;
}

SecretMount read_secret_mount(Reader& r, const toml::node& node, const std::string& label) {
    const auto& t = r.table(node, label);
    r.check_keys(t, label, {"id", "target", "env"});
    SecretMount secret;
    secret.where = r.at(node);
    const auto* id = t.get("id");
    if (!id) r.fail(t, "missing required key 'id' in " + label);
    secret.id = read_mount_id(r, *id, label + ".id", "secret");
    const auto* target = t.get("target");
    const auto* env = t.get("env");
    if (target && env)
        r.fail(*env, label + ": 'target' and 'env' are exclusive: a secret is a file or a "
                             "variable (write two secrets for both)");
    if (!target && !env)
        r.fail(t, label + ": needs 'target' (a file to mount) or 'env' (a variable to set)");
    if (target) secret.target = read_target(r, *target, label + ".target");
    if (env) {
        secret.env = r.string(*env, label + ".env");
        if (!is_env_name(secret.env))
            r.fail(*env, label + ".env: invalid variable name " + quote(secret.env) +
                             ": expected [A-Za-z_][A-Za-z0-9_]*");
    }
    return secret;
}

std::vector<SecretMount> read_secrets(Reader& r, const toml::node& node, const std::string& label,
                                      Claims& claims) {
    if (!node.is_table() && !node.is_array())
        r.fail(node, label + ": expected a table or an array of tables, got " + type_name(node));
    std::vector<SecretMount> secrets;
    for (const auto* item : one_or_many(r, node, label)) {
        auto secret = read_secret_mount(r, *item, label);
        if (!secret.target.empty()) claim_target(r, claims, secret.target, secret.where, label);
        if (!secret.env.empty() && !claims.env.insert(secret.env).second)
            r.fail(secret.where, label + ": variable " + secret.env +
                                     " is already set by this step's env or another secret");
        secrets.push_back(std::move(secret));
    }
    return secrets;
}

void read_command(Reader& r, const toml::node& node, const std::string& label, RunStep& run) {
    if (node.is_string()) {
        run.form = RunStep::Form::shell;
        run.script = r.string(node, label, {}, ArgRefs::declared_only);
        if (run.script.find_first_not_of(" \t\r\n") == std::string::npos)
            r.fail(node, label + ": the command is empty");
        return;
    }
    if (!node.is_array())
        r.fail(node, label + ": expected a string or an array of strings, got " + type_name(node) +
                         " (a string runs with the shell, an array runs the program directly)");
    run.form = RunStep::Form::exec;
    for (auto& item : r.strings(node, label, {}, ArgRefs::declared_only))
        run.exec.push_back(std::move(item.value));
    if (run.exec.empty()) r.fail(node, label + ": needs at least the program to run");
    if (run.exec[0].empty()) r.fail(node, label + ": the program is an empty string");
}

std::vector<std::string> read_shell(Reader& r, const toml::node& node, const std::string& label) {
    std::vector<std::string> shell;
    for (auto& item : r.strings(node, label, "write shell = [\"/bin/bash\", \"-euc\"]"))
        shell.push_back(std::move(item.value));
    if (shell.empty() || shell[0].empty())
        r.fail(node, label + ": needs at least the program to run");
    return shell;
}

RunStep::Trust read_trust(Reader& r, const toml::node& node, const std::string& label) {
    std::string value = r.string(node, label, "write trust = \"image\" (or \"host\", the default)");
    if (value == "host") return RunStep::Trust::host;
    if (value == "image") return RunStep::Trust::image;
    r.fail(node, label + ": expected \"host\" or \"image\", got \"" + value + "\"");
}

} // namespace

const std::vector<std::string>& run_options() {
    static const std::vector<std::string> options = {"shell",   "env",   "user",  "workdir",
                                                     "network", "trust", "cache", "secret"};
    return options;
}

RunStep read_run(Reader& r, const toml::table& t, const std::string& label) {
    auto key = [&](std::string_view k) { return label + " " + std::string(k); };
    RunStep run;
    const auto& command = *t.get("run");
    run.where = r.at(command);
    read_command(r, command, key("run"), run);
    if (const auto* shell = t.get("shell")) {
        if (run.form == RunStep::Form::exec)
            r.fail(*shell, key("shell") + ": applies to a string run only; an array run starts "
                                          "its program without a shell");
        run.shell = read_shell(r, *shell, key("shell"));
    }
    Claims claims;
    if (const auto* env = t.get("env")) {
        run.env = read_env(r, *env, key("env"));
        for (const auto& [name, value] : run.env)
            claims.env.insert(name);
    }
    if (const auto* user = t.get("user")) run.user = read_user(r, *user, key("user"));
    if (const auto* workdir = t.get("workdir"))
        run.workdir = read_absolute(r, *workdir, key("workdir"));
    if (const auto* network = t.get("network")) run.network = r.boolean(*network, key("network"));
    if (const auto* trust = t.get("trust")) run.trust = read_trust(r, *trust, key("trust"));
    if (const auto* cache = t.get("cache")) run.cache = read_cache(r, *cache, key("cache"), claims);
    if (const auto* secret = t.get("secret"))
        run.secrets = read_secrets(r, *secret, key("secret"), claims);
    return run;
}

} // namespace factory::recipe::detail
