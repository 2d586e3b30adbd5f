#include "factory/sources/remote_url.hpp"

#include <openssl/evp.h>

namespace factory::sources {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

} // namespace

Result<RemoteUrl> parse_remote_url(const std::string& url) {
    if (url.empty()) return Unexpected("the URL is empty");
    for (unsigned char c : url)
        if (c < 0x21 || c == 0x7f)
            return Unexpected("the URL holds a space or a control character");
    RemoteUrl r;
    r.url = url;
    auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return r;
    auto authority = scheme_end + 3;
    auto path = url.find('/', authority);
    auto at = url.rfind('@', path == std::string::npos ? std::string::npos : path);
    if (at == std::string::npos || at < authority) return r;
    std::string_view userinfo(url.data() + authority, at - authority);
    auto colon = userinfo.find(':');
    r.user = percent_decode(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) r.password = percent_decode(userinfo.substr(colon + 1));
    r.url = url.substr(0, authority) + url.substr(at + 1);
    return r;
}

std::string basic_auth_header(const RemoteUrl& remote) {
    std::string plain = remote.user + ":" + remote.password;
    std::string out(4 * ((plain.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(plain.data()),
                            static_cast<int>(plain.size()));
    out.resize(static_cast<std::size_t>(n));
    return "Authorization: Basic " + out;
}

std::string resolve_relative_url(const std::string& base, const std::string& relative) {
    if (!relative.starts_with("./") && !relative.starts_with("../")) return relative;
    std::string b = base;
    while (b.size() > 1 && b.back() == '/')
        b.pop_back();
    std::string_view rel = relative;
    while (true) {
        if (rel.starts_with("./")) {
            rel.remove_prefix(2);
        } else if (rel.starts_with("../")) {
            rel.remove_prefix(3);
            auto slash = b.find_last_of("/:");
            // Never climb above the host: "https://h/r" + "../../x" stops at "https://h".
            if (slash == std::string::npos ||
                (b.find("://") != std::string::npos && slash <= b.find("://") + 2))
                break;
            b.erase(slash);
        } else {
            break;
        }
    }
    return b + "/" + std::string(rel);
}

} // namespace factory::sources
