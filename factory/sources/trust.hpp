#pragma once
// The host's trust store: the CA bundle the host's own TLS clients use. On a network whose
// egress re-signs TLS (a corporate proxy; MACHINE-NOTES.md "TLS from inside containers") it
// holds the CA an image's own store lacks. factory's fetches (git mirrors, downloads) use it,
// and RUN steps get it mounted read-only for the step only (docs/recipe.md "trust"); it never
// reaches a layer, a cache key or a record.

#include <filesystem>
#include <string>
#include <vector>

namespace factory::sources {

namespace fs = std::filesystem;

// Where a step sees the host's bundle (a read-only bind mount of one file).
inline constexpr const char* step_ca_bundle_path = "/run/factory/host-ca-certificates.crt";

// The host's CA bundle: $FACTORY_HOST_CA_BUNDLE (the empty string: none), else $SSL_CERT_FILE,
// else the first regular, non-empty file of /etc/ssl/certs/ca-certificates.crt (Debian),
// /etc/pki/tls/certs/ca-bundle.crt (Fedora), /etc/ssl/cert.pem (Alpine, macOS). Empty if
// none. Never fails.
fs::path host_ca_bundle();

// The variables pointing a step's tools at `path`: SSL_CERT_FILE, NODE_EXTRA_CA_CERTS,
// PIP_CERT, REQUESTS_CA_BUNDLE, GIT_SSL_CAINFO, CURL_CA_BUNDLE ("NAME=path" each).
std::vector<std::string> ca_bundle_env(const std::string& path);

} // namespace factory::sources
