#pragma once
// Where registry credentials come from, in this order (the first file that knows the registry
// wins; containers-auth.json(5)):
//   1. $REGISTRY_AUTH_FILE, when set;
//   2. factory's own file, written by `factory login` (0600): $XDG_CONFIG_HOME/factory/auth.json
//      or ~/.config/factory/auth.json;
//   3. $XDG_RUNTIME_DIR/containers/auth.json (podman login);
//   4. ~/.config/containers/auth.json;
//   5. ~/.docker/config.json (docker login);
//   6. ~/.dockercfg (the old Docker format: the "auths" object alone).
// In each file: a `credHelpers` entry for the host runs `docker-credential-NAME get`; else the
// longest `auths` key matching HOST/REPOSITORY (a host, or a namespace such as
// quay.io/team/app); else a `credsStore` helper. Secrets never reach a log or an error message.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"

namespace factory::registry {

namespace fs = std::filesystem;

struct Credentials {
    std::string username;
    std::string password;       // or a personal access token
    std::string identity_token; // an OAuth2 refresh token (docker's "identitytoken")
    std::string source;         // the file or helper it came from (for messages; no secret)
};

// The files searched, in order (those that don't exist included).
std::vector<fs::path> auth_files();
// factory's own file (2. above).
fs::path factory_auth_file();

// The credentials for host/repository, or nullopt (anonymous). Throws Error when a file is
// unreadable or malformed, or a helper fails other than by not knowing the host.
std::optional<Credentials> find_credentials(std::string_view host, std::string_view repository);

// `factory login`: stores user:password for host in factory_auth_file() (0600, atomically).
void save_login(std::string_view host, const Credentials& creds);
// `factory logout`: removes host's entry; false if there was none.
bool remove_login(std::string_view host);

// The "auths" key forms for a registry: "host", and Docker Hub's legacy names for docker.io.
// Keys with a scheme ("https://host/v1/") are normalized to their host.
std::string normalize_auth_key(std::string_view key);

// base64 (RFC 4648, with padding), as auth.json's "auth" fields use it.
std::string base64_encode(std::string_view bytes);
Result<std::string> base64_decode(std::string_view text);

} // namespace factory::registry
