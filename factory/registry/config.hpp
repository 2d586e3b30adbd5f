#pragma once
// Per-registry settings, in the spirit of containers-registries.conf(5) and docker's
// daemon.json "insecure-registries": a TOML file of [[registry]] tables,
//
//   [[registry]]
//   location = "127.0.0.1:5000"   # HOST[:PORT], as in a reference
//   insecure = true               # plain HTTP allowed, certificates not verified
//   ca = "certs/ca.pem"           # a PEM bundle to verify this host with (relative: to the file)
//
// The file is $FACTORY_REGISTRIES_CONF if set, else $XDG_CONFIG_HOME/factory/registries.toml
// (~/.config/…), else /etc/factory/registries.toml: the first that exists, alone. Errors are
// FILE:LINE:COL.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace factory::registry {

namespace fs = std::filesystem;

struct HostConfig {
    std::string location; // HOST[:PORT]
    bool insecure = false;
    fs::path ca; // absolute; empty: the system's CAs
};

struct RegistriesConfig {
    fs::path file; // where it came from; empty when there is none
    std::vector<HostConfig> hosts;

    // The table for host (exactly its location; "docker.io" also for registry-1.docker.io).
    const HostConfig* find(std::string_view host) const;
};

// The files searched, in order.
std::vector<fs::path> registries_config_files();

// Reads the first file of registries_config_files() that exists (none: an empty config).
// Throws a usage Error "FILE:LINE:COL: message" for a malformed one.
RegistriesConfig load_registries_config();

// Parses text as the file `file` (for messages and relative ca paths). Throws like load.
RegistriesConfig parse_registries_config(std::string_view text, const fs::path& file);

// Warns (factory::warn), once per host in the process, "TLS verification is off for HOST …"
// (why: "--tls-verify=false" or the config file that says so). --tls-verify=false, which covers
// every host, is warned about once whatever the host.
void warn_insecure(const std::string& host, const std::string& why);

} // namespace factory::registry
