// libFuzzer target: the strict image config reader must never crash; an accepted config's
// canonical form must be accepted again and be a fixpoint; the setters must keep it valid.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "factory/oci/image_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto c = factory::oci::ImageConfig::parse(in);
    if (!c) return 0;
    auto bytes = c->serialize();
    auto again = factory::oci::ImageConfig::parse(bytes, c->diff_ids().size());
    if (!again || again->serialize() != bytes) std::abort();
    (void)c->platform();
    (void)c->history();
    (void)c->labels();
    c->set_env_var("PATH", "/bin");
    c->add_layer("sha256:" + std::string(64, '0'), factory::oci::History{});
    if (!factory::oci::ImageConfig::parse(c->serialize(), c->diff_ids().size())) std::abort();
    return 0;
}
