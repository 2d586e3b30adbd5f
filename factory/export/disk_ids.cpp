#include "factory/export/disk_ids.hpp"

#include "factory/util/sha256.hpp"

namespace factory::exporter {

namespace {
// 32 bytes as hex: the purpose is framed by its length so that no two inputs collide.
std::string hash_of(std::string_view digest, std::string_view purpose) {
    return Sha256::hex("factory disk id\n" + std::to_string(purpose.size()) + ":" +
                       std::string(purpose) + "\n" + std::string(digest));
}
} // namespace

std::string derived_uuid(std::string_view digest, std::string_view purpose) {
    std::string h = hash_of(digest, purpose).substr(0, 32);
    h[12] = '5'; // version 5: name-based (SHA here, not SHA-1, but the same use)
    static const char variant[] = "89ab";
    h[16] = variant[std::stoi(std::string(1, h[16]), nullptr, 16) & 3];
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20, 12);
}

std::uint32_t derived_u32(std::string_view digest, std::string_view purpose) {
    return static_cast<std::uint32_t>(
        std::stoul(hash_of(digest, purpose).substr(0, 8), nullptr, 16));
}

} // namespace factory::exporter
