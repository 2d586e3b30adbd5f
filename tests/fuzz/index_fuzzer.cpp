// libFuzzer target: the strict image index reader must never crash, serialize ∘ parse must be a
// fixpoint, and platform selection must be safe on whatever it accepts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "factory/oci/index.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto i = factory::oci::parse_index(in);
    if (!i) return 0;
    auto bytes = factory::oci::serialize(*i);
    auto again = factory::oci::parse_index(bytes);
    if (!again || !(*again == *i) || factory::oci::serialize(*again) != bytes) std::abort();
    (void)factory::oci::select_platform(*i, factory::oci::Platform{"amd64", "linux", "", {}, ""});
    return 0;
}
