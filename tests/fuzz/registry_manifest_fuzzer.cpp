// libFuzzer target: what a registry answers to a manifest GET goes through check_manifest; it
// must never crash, and what it accepts is one of the four types with its sha256 as digest.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "factory/oci/digest.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/registry/manifest_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    namespace mt = factory::oci::media_type;
    // The first byte picks the Content-Type the "registry" sends with the rest.
    static const std::string_view types[] = {mt::manifest,        mt::index,
                                             mt::docker_manifest, mt::docker_manifest_list,
                                             "application/json",  ""};
    std::string_view type = types[in.empty() ? 0 : static_cast<unsigned char>(in[0]) % 6];
    std::string body(in.empty() ? in : in.substr(1));
    auto r = factory::registry::check_manifest(body, type, "", "");
    if (!r) return 0;
    if (!mt::is_manifest(r->media_type) && !mt::is_index(r->media_type)) std::abort();
    if (r->digest != factory::oci::Digest::of(body).str()) std::abort();
    if (r->manifest.has_value() == r->index.has_value()) std::abort();
    return 0;
}
