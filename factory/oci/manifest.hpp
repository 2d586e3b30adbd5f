#pragma once
// Image manifests (image-spec manifest.md; Docker schema2 read too).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/media_types.hpp"

namespace factory::oci {

struct Manifest {
    // schemaVersion is always 2.
    std::string media_type{media_type::manifest}; // "" when a parsed document had none
    std::string artifact_type;
    Descriptor config;
    std::vector<Descriptor> layers;
    std::optional<Descriptor> subject;
    std::map<std::string, std::string> annotations;

    friend bool operator==(const Manifest&, const Manifest&) = default;
};

// The exact bytes Go's json.Marshal writes for specs-go/v1 Manifest.
std::string serialize(const Manifest& m);
Json to_json(const Manifest& m);

// Strict reader. Rejects: more than 4 MiB, invalid or duplicate-key JSON, schemaVersion != 2,
// a mediaType that is not a manifest type or differs from expected_media_type (the descriptor's
// or the Content-Type; empty: not checked), a "manifests" field (CVE-2021-41190), a missing or
// malformed config or layers, bad digests, negative sizes, wrong types.
Result<Manifest> parse_manifest(std::string_view bytes, std::string_view expected_media_type = {});

} // namespace factory::oci
