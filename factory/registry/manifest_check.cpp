#include "factory/registry/manifest_check.hpp"

#include <nlohmann/json.hpp>

#include "factory/oci/digest.hpp"
#include "factory/oci/media_types.hpp"

namespace factory::registry {

namespace mt = oci::media_type;

std::string manifest_accept_header() {
    return "Accept: " + std::string(mt::manifest) + ", " + std::string(mt::index) + ", " +
           std::string(mt::docker_manifest) + ", " + std::string(mt::docker_manifest_list);
}

namespace {

std::string_view bare_type(std::string_view ct) {
    ct = ct.substr(0, ct.find(';'));
    while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t'))
        ct.remove_suffix(1);
    return ct;
}

// The document's own "mediaType" field, or "" when it has none (or isn't an object).
std::string document_type(std::string_view bytes) {
    auto j = nlohmann::json::parse(bytes, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return {};
    auto it = j.find("mediaType");
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string kind(std::string_view type) {
    return mt::is_index(type)      ? "an index"
           : mt::is_manifest(type) ? "a manifest"
                                   : "'" + std::string(type) + "'";
}

} // namespace

Result<CheckedManifest> check_manifest(std::string bytes, std::string_view content_type,
                                       std::string_view asked_digest,
                                       std::string_view expected_media_type) {
    if (bytes.size() > max_manifest_size)
        return Unexpected("manifest is larger than 4 MiB (" + std::to_string(bytes.size()) +
                          " bytes)");
    CheckedManifest out;
    out.digest = oci::Digest::of(bytes).str();
    if (!asked_digest.empty() && out.digest != asked_digest)
        return Unexpected("manifest content does not match the digest asked for: got " +
                          out.digest + ", expected " + std::string(asked_digest));
    auto ct = bare_type(content_type);
    auto doc = document_type(bytes);
    if (ct.starts_with("application/vnd.docker.distribution.manifest.v1"))
        return Unexpected("Docker schema 1 manifests are not supported (" + std::string(ct) + ")");
    // Registries that don't store a media type answer application/json or octet-stream: the
    // document's own field is then the only word on what it is.
    std::string type = mt::is_manifest(ct) || mt::is_index(ct) ? std::string(ct) : doc;
    if (!mt::is_manifest(type) && !mt::is_index(type))
        return Unexpected("not an OCI or Docker schema 2 manifest or index (Content-Type '" +
                          std::string(ct) + "', mediaType '" + doc + "')");
    if (!doc.empty() && doc != type)
        return Unexpected("Content-Type '" + type + "' but the document says mediaType '" + doc +
                          "'");
    if (!expected_media_type.empty() && expected_media_type != type)
        return Unexpected(kind(type) + " (" + type + ") was served where " +
                          kind(expected_media_type) + " (" + std::string(expected_media_type) +
                          ") was expected");
    out.media_type = type;
    if (mt::is_index(type)) {
        auto i = oci::parse_index(bytes, doc.empty() ? "" : type);
        if (!i) return Unexpected("invalid index: " + i.error());
        out.index = std::move(*i);
    } else {
        auto m = oci::parse_manifest(bytes, doc.empty() ? "" : type);
        if (!m) return Unexpected("invalid manifest: " + m.error());
        out.manifest = std::move(*m);
    }
    out.bytes = std::move(bytes);
    return out;
}

} // namespace factory::registry
