// libFuzzer target: the strict image manifest reader must never crash, and whatever it accepts
// must serialize to bytes it accepts again, unchanged (serialize ∘ parse is a fixpoint).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "factory/oci/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    for (std::string_view expected : {std::string_view{}, factory::oci::media_type::manifest,
                                      factory::oci::media_type::docker_manifest}) {
        auto m = factory::oci::parse_manifest(in, expected);
        if (!m) continue;
        auto bytes = factory::oci::serialize(*m);
        auto again = factory::oci::parse_manifest(bytes, expected);
        if (!again || !(*again == *m) || factory::oci::serialize(*again) != bytes) std::abort();
    }
    return 0;
}
