// libFuzzer target: the listing parser (builder/tree.hpp parse_listing) must never crash on
// what a damaged store could hold, and what it accepts must serialize back to the same bytes
// (one spelling per listing: nothing it takes is left unchecked).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "factory/builder/tree.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto listing = factory::builder::parse_listing(in, {});
    if (!listing) return 0;
    if (listing->entries.size() != listing->ordinals.size()) std::abort();
    if (factory::builder::serialize_listing(*listing, {}) != in) std::abort();
    return 0;
}
