#pragma once
// Identifiers of the disk exports (file system UUIDs, hash seeds, GPT GUIDs, FAT volume ids),
// all derived from the image's manifest digest: the same image gives the same bytes, and two
// images never share an id by chance.

#include <cstdint>
#include <string>
#include <string_view>

namespace factory::exporter {

// A UUID (RFC 9562 layout, version 5 and variant bits set) from sha256 of the purpose and the
// digest: "xxxxxxxx-xxxx-5xxx-yxxx-xxxxxxxxxxxx", lower case.
std::string derived_uuid(std::string_view digest, std::string_view purpose);

// 32 bits for a FAT volume id, from the same hash.
std::uint32_t derived_u32(std::string_view digest, std::string_view purpose);

} // namespace factory::exporter
