#pragma once
// The WWW-Authenticate header (RFC 9110 §11.6.1, §11.2): one or more challenges, each a scheme
// and either auth-params (name=token or name="quoted string") or a token68. Registries send
// `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"` (distribution token spec).

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"

namespace factory::registry {

struct Challenge {
    std::string scheme;                        // lower-cased: "basic", "bearer"
    std::map<std::string, std::string> params; // names lower-cased, values unquoted

    // params[name] or "".
    std::string param(const std::string& name) const;
};

// Parses a header value into its challenges, in order. Errors say where the syntax broke; a
// value over 16 KiB is refused.
Result<std::vector<Challenge>> parse_www_authenticate(std::string_view header);

} // namespace factory::registry
