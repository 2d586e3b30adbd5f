#pragma once
// Image indexes (image-spec image-index.md; Docker manifest lists read too).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/media_types.hpp"

namespace factory::oci {

struct Index {
    // schemaVersion is always 2.
    std::string media_type{media_type::index}; // "" when a parsed document had none
    std::string artifact_type;
    std::vector<Descriptor> manifests; // written as [] when empty, never null
    std::optional<Descriptor> subject;
    std::map<std::string, std::string> annotations;

    friend bool operator==(const Index&, const Index&) = default;
};

// The exact bytes Go's json.Marshal writes for specs-go/v1 Index.
std::string serialize(const Index& i);
Json to_json(const Index& i);

// Strict reader: as parse_manifest, with "config" or "layers" rejected (CVE-2021-41190) and
// "manifests" required.
Result<Index> parse_index(std::string_view bytes, std::string_view expected_media_type = {},
                          const JsonLimits& limits = {});

// The first entry (image-index.md: first match wins) for os/architecture (and variant when both
// sides name one), or nullptr.
const Descriptor* select_platform(const Index& index, const Platform& want);

} // namespace factory::oci
