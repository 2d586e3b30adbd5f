#include "factory/registry/config.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "factory/util/error.hpp"
#include "factory/util/progress.hpp"

namespace factory::registry {

namespace {

constexpr std::size_t max_config_size = 1u << 20;

std::string env_or(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

[[noreturn]] void fail_at(const fs::path& file, const toml::source_region& where,
                          const std::string& message) {
    throw usage_error(file.string() + ":" + std::to_string(where.begin.line) + ":" +
                      std::to_string(where.begin.column) + ": " + message);
}

// HOST[:PORT]: no scheme, no path, no credentials.
bool valid_location(std::string_view s) {
    if (s.empty() || s.size() > 255) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
              c == '[' || c == ']'))
            return false;
    return true;
}

HostConfig read_host(const toml::table& t, const fs::path& file) {
    HostConfig h;
    bool has_location = false;
    for (auto&& [key, value] : t) {
        auto name = std::string(key.str());
        if (name == "location") {
            const auto* s = value.as_string();
            if (!s) fail_at(file, value.source(), "[[registry]] location: expected a string");
            h.location = s->get();
            if (!valid_location(h.location))
                fail_at(file, value.source(),
                        "[[registry]] location '" + h.location +
                            "': expected HOST[:PORT] (no scheme, no path)");
            has_location = true;
        } else if (name == "insecure") {
            const auto* b = value.as_boolean();
            if (!b) fail_at(file, value.source(), "[[registry]] insecure: expected true or false");
            h.insecure = b->get();
        } else if (name == "ca") {
            const auto* s = value.as_string();
            if (!s || s->get().empty())
                fail_at(file, value.source(), "[[registry]] ca: expected a file name");
            fs::path ca = s->get();
            if (ca.is_relative()) ca = file.parent_path() / ca;
            std::error_code ec;
            if (!fs::is_regular_file(ca, ec))
                fail_at(file, value.source(), "[[registry]] ca: no such file: " + ca.string());
            h.ca = ca;
        } else {
            fail_at(file, key.source(),
                    "[[registry]]: unknown key '" + name + "' (known: location, insecure, ca)");
        }
    }
    if (!has_location) fail_at(file, t.source(), "[[registry]]: location is required");
    return h;
}

} // namespace

const HostConfig* RegistriesConfig::find(std::string_view host) const {
    std::string_view h = host == "registry-1.docker.io" ? "docker.io" : host;
    for (const auto& c : hosts)
        if (c.location == h) return &c;
    return nullptr;
}

std::vector<fs::path> registries_config_files() {
    std::vector<fs::path> files;
    if (auto f = env_or("FACTORY_REGISTRIES_CONF"); !f.empty()) {
        files.emplace_back(f);
        return files;
    }
    auto config = env_or("XDG_CONFIG_HOME");
    if (config.empty()) {
        auto home = env_or("HOME");
        if (!home.empty()) config = home + "/.config";
    }
    if (!config.empty()) files.push_back(fs::path(config) / "factory" / "registries.toml");
    files.emplace_back("/etc/factory/registries.toml");
    return files;
}

RegistriesConfig parse_registries_config(std::string_view text, const fs::path& file) {
    RegistriesConfig out;
    out.file = file;
    toml::table root;
    try {
        root = toml::parse(text, file.string());
    } catch (const toml::parse_error& e) {
        fail_at(file, e.source(), std::string(e.description()));
    }
    for (auto&& [key, value] : root) {
        if (key.str() != "registry")
            fail_at(file, key.source(),
                    "unknown key '" + std::string(key.str()) + "' (expected [[registry]] tables)");
        const auto* array = value.as_array();
        if (!array) fail_at(file, value.source(), "registry: expected [[registry]] tables");
        for (const auto& item : *array) {
            const auto* t = item.as_table();
            if (!t) fail_at(file, item.source(), "registry: expected [[registry]] tables");
            auto host = read_host(*t, file);
            if (out.find(host.location))
                fail_at(file, t->source(), "[[registry]] " + host.location + " is listed twice");
            out.hosts.push_back(std::move(host));
        }
    }
    return out;
}

RegistriesConfig load_registries_config() {
    for (const auto& f : registries_config_files()) {
        std::error_code ec;
        if (!fs::exists(f, ec)) continue;
        std::ifstream in(f, std::ios::binary);
        if (!in) throw usage_error(f.string() + ": cannot read the registries configuration");
        std::string text;
        text.resize(max_config_size + 1);
        in.read(text.data(), static_cast<std::streamsize>(text.size()));
        text.resize(static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_config_size) throw usage_error(f.string() + ": larger than 1 MiB");
        return parse_registries_config(text, f);
    }
    return {};
}

void warn_insecure(const std::string& host, const std::string& why) {
    static std::mutex mutex;
    static std::set<std::string> warned;
    std::lock_guard lock(mutex);
    // --tls-verify=false is every host's: said once, for what the first warning names (a
    // build's own clients come first, then its docker:// outputs').
    if (!warned.insert(why == "--tls-verify=false" ? why : host).second) return;
    warn("TLS verification is off for " + host + " (" + why +
         "; plain HTTP allowed); use it only for a registry you run yourself");
}

} // namespace factory::registry
