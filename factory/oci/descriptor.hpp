#pragma once
// Descriptors and platforms (image-spec descriptor.md, image-index.md "platform").

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "factory/oci/json.hpp"
#include "factory/util/error.hpp"

namespace factory::oci {

namespace annotation {
inline constexpr const char* ref_name = "org.opencontainers.image.ref.name";
inline constexpr const char* created = "org.opencontainers.image.created";
inline constexpr const char* base_name = "org.opencontainers.image.base.name";
inline constexpr const char* base_digest = "org.opencontainers.image.base.digest";
// Docker and containerd put the full reference here (docker.io/library/x:tag).
inline constexpr const char* containerd_image_name = "io.containerd.image.name";
} // namespace annotation

struct Platform {
    std::string architecture;
    std::string os;
    std::string os_version;
    std::vector<std::string> os_features;
    std::string variant;

    std::string str() const; // "linux/arm64/v8"
    friend bool operator==(const Platform&, const Platform&) = default;
};

// The platform this process runs on, in GOARCH/GOOS terms (linux/amd64, linux/arm64/v8 …).
Platform host_platform();

struct Descriptor {
    std::string media_type;
    std::string digest; // validated "sha256:<64 hex>" (or sha512) when parsed
    std::int64_t size = 0;
    std::vector<std::string> urls; // kept for round trips; never fetched (CVE-2020-15157)
    std::map<std::string, std::string> annotations;
    std::optional<std::string> data; // decoded bytes of the "data" field
    std::optional<Platform> platform;
    std::string artifact_type;

    // The sha256 hex of digest, or an error (sha512, malformed).
    Result<std::string> sha256_hex() const;
    // annotations[org.opencontainers.image.ref.name], or "".
    std::string ref_name() const;
    friend bool operator==(const Descriptor&, const Descriptor&) = default;
};

// A descriptor of some bytes: sha256 digest and size.
Descriptor describe(std::string media_type, std::string_view bytes);

// The Go field order of specs-go/v1 Descriptor and Platform, with their omitempty rules.
Json to_json(const Platform& p);
Json to_json(const Descriptor& d);

// Strict readers of an already parsed JSON value (see manifest.hpp for the document readers).
// `path` prefixes error messages, e.g. "layers[0]".
Result<Descriptor> descriptor_from_json(const Json& v, const std::string& path = "");
Result<Platform> platform_from_json(const Json& v, const std::string& path = "");

// True if s matches the media type grammar of descriptor.md (RFC 6838 type/subtype).
bool is_valid_media_type(std::string_view s);

} // namespace factory::oci
