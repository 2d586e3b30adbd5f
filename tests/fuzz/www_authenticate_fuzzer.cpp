// libFuzzer target: the WWW-Authenticate parser must never crash on what a registry sends, and
// whatever it accepts has a lower-case scheme and at least one challenge.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "factory/registry/www_authenticate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto r = factory::registry::parse_www_authenticate(in);
    if (!r) return 0;
    if (r->empty()) std::abort();
    for (const auto& c : *r) {
        if (c.scheme.empty()) std::abort();
        for (char ch : c.scheme)
            if (ch >= 'A' && ch <= 'Z') std::abort();
    }
    return 0;
}
