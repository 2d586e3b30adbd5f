#include "factory/oci/descriptor.hpp"

#include <sys/utsname.h>

#include <limits>

#include "factory/oci/descriptor_internal.hpp"
#include "factory/oci/digest.hpp"
#include "factory/util/sha256.hpp"

namespace factory::oci {

std::string Platform::str() const {
    auto s = os + "/" + architecture;
    if (!variant.empty()) s += "/" + variant;
    return s;
}

Platform host_platform() {
    Platform p;
    p.os = "linux";
    struct utsname u {};
    std::string m = ::uname(&u) == 0 ? u.machine : "";
    // uname -m → GOARCH (containerd platforms.DefaultSpec).
    if (m == "x86_64")
        p.architecture = "amd64";
    else if (m == "aarch64" || m == "arm64")
        p.architecture = "arm64";
    else if (m.starts_with("armv7"))
        p.architecture = "arm", p.variant = "v7";
    else if (m.starts_with("armv6"))
        p.architecture = "arm", p.variant = "v6";
    else if (m == "i386" || m == "i686")
        p.architecture = "386";
    else if (m == "ppc64le" || m == "s390x" || m == "riscv64")
        p.architecture = m;
    else
        p.architecture = m;
    return p;
}

Result<std::string> Descriptor::sha256_hex() const {
    return sha256_hex_of(digest);
}

std::string Descriptor::ref_name() const {
    auto it = annotations.find(annotation::ref_name);
    return it == annotations.end() ? std::string() : it->second;
}

Descriptor describe(std::string media_type, std::string_view bytes) {
    Descriptor d;
    d.media_type = std::move(media_type);
    d.digest = "sha256:" + Sha256::hex(bytes);
    d.size = static_cast<std::int64_t>(bytes.size());
    return d;
}

Json to_json(const Platform& p) {
    Json j = Json::object();
    j["architecture"] = p.architecture;
    j["os"] = p.os;
    if (!p.os_version.empty()) j["os.version"] = p.os_version;
    if (!p.os_features.empty()) j["os.features"] = p.os_features;
    if (!p.variant.empty()) j["variant"] = p.variant;
    return j;
}

Json to_json(const Descriptor& d) {
    Json j = Json::object();
    j["mediaType"] = d.media_type;
    j["digest"] = d.digest;
    j["size"] = d.size;
    if (!d.urls.empty()) j["urls"] = d.urls;
    if (!d.annotations.empty()) j["annotations"] = detail::sorted_object(d.annotations);
    if (d.data && !d.data->empty()) j["data"] = detail::base64_encode(*d.data);
    if (d.platform) j["platform"] = to_json(*d.platform);
    if (!d.artifact_type.empty()) j["artifactType"] = d.artifact_type;
    return j;
}

bool is_valid_media_type(std::string_view s) {
    // descriptor.md:
    // ^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$
    auto part_ok = [](std::string_view p) {
        if (p.empty() || p.size() > 127) return false;
        auto alnum = [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        };
        if (!alnum(p[0])) return false;
        for (char c : p.substr(1))
            if (!alnum(c) && std::string_view("!#$&^_.+-").find(c) == std::string_view::npos)
                return false;
        return true;
    };
    auto slash = s.find('/');
    return slash != std::string_view::npos && part_ok(s.substr(0, slash)) &&
           part_ok(s.substr(slash + 1));
}

namespace detail {

std::map<std::string, std::string> read_annotations(const Json& obj, const std::string& path) {
    return opt_string_map(obj, "annotations", path);
}

Platform read_platform(const Json& v, const std::string& path) {
    require_object(v, path);
    Platform p;
    p.architecture = req_string(v, "architecture", path);
    p.os = req_string(v, "os", path);
    p.os_version = opt_string(v, "os.version", path).value_or("");
    p.os_features = opt_string_array(v, "os.features", path);
    p.variant = opt_string(v, "variant", path).value_or("");
    return p;
}

Descriptor read_descriptor(const Json& v, const std::string& path) {
    require_object(v, path);
    Descriptor d;
    d.media_type = req_string(v, "mediaType", path);
    if (!is_valid_media_type(d.media_type))
        fail(join(path, "mediaType"), "invalid media type " + quote(d.media_type));
    d.digest = req_string(v, "digest", path);
    auto digest = Digest::parse(d.digest);
    if (!digest) fail(join(path, "digest"), digest.error());
    auto size = opt_int(v, "size", path, 0, std::numeric_limits<std::int64_t>::max());
    if (!size) fail(join(path, "size"), "is required");
    d.size = *size;
    d.urls = opt_string_array(v, "urls", path);
    d.annotations = read_annotations(v, path);
    if (auto data = opt_string(v, "data", path)) {
        auto decoded = base64_decode(*data);
        if (!decoded) fail(join(path, "data"), "is not valid base64");
        // descriptor.md "Embedded data": it must match the size and digest.
        if (static_cast<std::int64_t>(decoded->size()) != d.size)
            fail(join(path, "data"), "has " + std::to_string(decoded->size()) +
                                         " bytes but size says " + std::to_string(d.size));
        if (digest->is_sha256() && Sha256::hex(*decoded) != digest->encoded())
            fail(join(path, "data"), "does not match the digest " + d.digest);
        d.data = std::move(*decoded);
    }
    if (auto p = member(v, "platform")) d.platform = read_platform(*p, join(path, "platform"));
    d.artifact_type = opt_string(v, "artifactType", path).value_or("");
    return d;
}

} // namespace detail

Result<Descriptor> descriptor_from_json(const Json& v, const std::string& path) {
    try {
        return detail::read_descriptor(v, path);
    } catch (const detail::SchemaError& e) {
        return Unexpected(e.message);
    }
}

Result<Platform> platform_from_json(const Json& v, const std::string& path) {
    try {
        return detail::read_platform(v, path);
    } catch (const detail::SchemaError& e) {
        return Unexpected(e.message);
    }
}

} // namespace factory::oci
