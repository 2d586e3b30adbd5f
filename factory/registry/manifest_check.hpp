#pragma once
// What a manifest GET may answer, checked before anything is stored: at most 4 MiB; an OCI or
// Docker schema2 manifest or index (Content-Type and the document's mediaType agree, and agree
// with the media type the referring descriptor gave); parsed by the strict readers of oci/; its
// sha256 equal to the digest asked for (distribution-spec: verify against the digest you asked
// for, not the Docker-Content-Digest header).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "factory/oci/index.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/util/error.hpp"

namespace factory::registry {

inline constexpr std::uint64_t max_manifest_size = 4u << 20;

// The Accept header of manifest requests: the four types we read.
std::string manifest_accept_header();

struct CheckedManifest {
    std::string bytes;
    std::string media_type; // one of the four types
    std::string digest;     // sha256 of bytes
    std::optional<oci::Manifest> manifest;
    std::optional<oci::Index> index;
};

// bytes: the body; content_type: the Content-Type header (parameters ignored; may be empty);
// asked_digest: the digest in the request URL, or "" for a tag; expected_media_type: the media
// type of the descriptor that led here, or "". Errors say what was wrong ("an index was served
// where a manifest was expected", "content does not match the digest …").
Result<CheckedManifest> check_manifest(std::string bytes, std::string_view content_type,
                                       std::string_view asked_digest,
                                       std::string_view expected_media_type);

} // namespace factory::registry
