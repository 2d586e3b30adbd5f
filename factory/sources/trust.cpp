#include "factory/sources/trust.hpp"

#include <sys/stat.h>

#include <cstdlib>

namespace factory::sources {

namespace {

bool usable(const fs::path& p) {
    struct stat st {};
    return !p.empty() && ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

} // namespace

fs::path host_ca_bundle() {
    if (const char* forced = std::getenv("FACTORY_HOST_CA_BUNDLE"))
        return usable(forced) ? fs::path(forced) : fs::path();
    if (const char* env = std::getenv("SSL_CERT_FILE"); env && usable(env)) return env;
    for (const char* p : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                          "/etc/ssl/cert.pem"})
        if (usable(p)) return p;
    return {};
}

std::vector<std::string> ca_bundle_env(const std::string& path) {
    std::vector<std::string> env;
    for (const char* name : {"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "PIP_CERT",
                             "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE"})
        env.push_back(std::string(name) + "=" + path);
    return env;
}

} // namespace factory::sources
