#include "factory/recipe/config_reader.hpp"

#include "factory/recipe/grammar.hpp"
#include "factory/recipe/suggest.hpp"

#include <set>

namespace factory::recipe::detail {

namespace {

std::map<std::string, std::string> read_map(Reader& r, const toml::node& node,
                                            const std::string& label) {
    std::map<std::string, std::string> out;
    for (auto& entry : r.string_table(node, label)) {
        if (entry.key.empty()) r.fail(entry.key_where, label + ": empty key");
        out.emplace(std::move(entry.key), std::move(entry.value));
    }
    return out;
}

std::vector<std::string> read_ports(Reader& r, const toml::node& node, const std::string& label) {
    const auto& array = r.array(node, label, "write ports = [\"8080\", \"53/udp\"]");
    std::vector<std::string> ports;
    std::set<std::string> seen; // a recipe may list 100 000 ports: no quadratic search
    for (const auto& element : array) {
        std::string port;
        if (const auto* number = element.as_integer())
            port = std::to_string(number->get());
        else if (element.is_string())
            port = r.string(element, label);
        else
            r.fail(element, label + ": expected a string or an integer, got " + type_name(element));
        auto normal = normalize_port(port);
        if (!normal)
            r.fail(element, label + ": invalid port " + quote(port) +
                                ": expected \"N\" or \"N/PROTO\" with N in 1..65535 and PROTO "
                                "tcp, udp or sctp");
        // ExposedPorts is a set: a repeat ("80" and "80/tcp") adds nothing.
        if (seen.insert(*normal).second) ports.push_back(std::move(*normal));
    }
    return ports;
}

std::vector<std::string> read_volumes(Reader& r, const toml::node& node, const std::string& label) {
    std::vector<std::string> volumes;
    std::set<std::string> seen;
    for (const auto& element : r.array(node, label, "write volumes = [\"/data\"]")) {
        std::string path = read_absolute(r, element, label);
        if (seen.insert(path).second) volumes.push_back(std::move(path));
    }
    return volumes;
}

std::string read_stop_signal(Reader& r, const toml::node& node, const std::string& label) {
    std::string signal;
    if (const auto* number = node.as_integer())
        signal = std::to_string(number->get());
    else
        signal = r.string(node, label);
    if (is_stop_signal(signal)) return signal;
    std::string message = label + ": invalid signal " + quote(signal) +
                          ": expected a name such as \"SIGTERM\" or a number 1..64";
    if (is_stop_signal("SIG" + signal)) message += "; did you mean \"SIG" + signal + "\"?";
    r.fail(node, message);
}

std::vector<std::string> read_command(Reader& r, const toml::node& node, const std::string& label,
                                      std::string_view key) {
    std::string hint = "write " + std::string(key) +
                       " = [\"/bin/sh\", \"-c\", \"…\"] to run a command line through a shell";
    std::vector<std::string> out;
    for (auto& item : r.strings(node, label, hint))
        out.push_back(std::move(item.value));
    return out;
}

} // namespace

std::vector<std::pair<std::string, std::string>> read_env(Reader& r, const toml::node& node,
                                                          const std::string& label) {
    std::vector<std::pair<std::string, std::string>> env;
    for (auto& entry : r.string_table(node, label)) {
        if (entry.key.empty() || entry.key.find('=') != std::string::npos ||
            entry.key.find('\0') != std::string::npos)
            r.fail(entry.key_where, label + ": invalid variable name " + quote(entry.key) +
                                        " (it must be non-empty and contain no '=')");
        env.emplace_back(std::move(entry.key), std::move(entry.value));
    }
    return env;
}

std::string read_absolute(Reader& r, const toml::node& node, const std::string& label) {
    std::string path = r.string(node, label);
    if (!path.starts_with('/')) r.fail(node, label + ": must be an absolute path: " + quote(path));
    if (has_dotdot(path)) r.fail(node, label + ": must not contain '..': " + quote(path));
    return path;
}

std::string read_user(Reader& r, const toml::node& node, const std::string& label) {
    std::string user = r.string(node, label);
    if (!is_user(user))
        r.fail(node,
               label + ": invalid user " + quote(user) +
                   ": expected \"uid[:gid]\" or \"name[:group]\" with numeric ids below 2^31");
    return user;
}

ImageConfig read_config(Reader& r, const toml::table& t, const std::string& label) {
    r.check_keys(t, label,
                 {"env", "entrypoint", "cmd", "workdir", "user", "labels", "ports", "volumes",
                  "stop_signal"});
    ImageConfig config;
    auto key = [&](std::string_view k) { return label + " " + std::string(k); };
    if (const auto* node = t.get("env")) config.env = read_env(r, *node, key("env"));
    if (const auto* node = t.get("entrypoint"))
        config.entrypoint = read_command(r, *node, key("entrypoint"), "entrypoint");
    if (const auto* node = t.get("cmd")) config.cmd = read_command(r, *node, key("cmd"), "cmd");
    if (const auto* node = t.get("workdir"))
        config.workdir = read_absolute(r, *node, key("workdir"));
    if (const auto* node = t.get("user")) config.user = read_user(r, *node, key("user"));
    if (const auto* node = t.get("labels")) config.labels = read_map(r, *node, key("labels"));
    if (const auto* node = t.get("ports"))
        config.exposed_ports = read_ports(r, *node, key("ports"));
    if (const auto* node = t.get("volumes"))
        config.volumes = read_volumes(r, *node, key("volumes"));
    if (const auto* node = t.get("stop_signal"))
        config.stop_signal = read_stop_signal(r, *node, key("stop_signal"));
    return config;
}

} // namespace factory::recipe::detail
