#include "factory/oci/manifest.hpp"

#include "factory/oci/descriptor_internal.hpp"

namespace factory::oci {

using namespace detail;

namespace detail {

void read_schema_version(const Json& obj) {
    auto v = opt_int(obj, "schemaVersion", "", -1000000, 1000000);
    if (!v) fail("schemaVersion", "is required");
    if (*v != 2) fail("schemaVersion", "must be 2, not " + std::to_string(*v));
}

std::string read_doc_media_type(const Json& obj, std::string_view expected,
                                bool (*is_kind)(std::string_view), const char* kind) {
    auto mt = opt_string(obj, "mediaType", "").value_or("");
    if (!mt.empty() && !is_kind(mt))
        fail("mediaType", quote(mt) + " is not " + kind + " media type");
    if (!expected.empty()) {
        // CVE-2021-41190: what the referrer (descriptor, Content-Type) says must be what the
        // document says, so one blob can't be read as two different things.
        if (!is_kind(expected))
            fail("",
                 "expected " + std::string(kind) + " but the descriptor says " + quote(expected));
        if (!mt.empty() && mt != expected)
            fail("mediaType", quote(mt) + " does not match the descriptor's " + quote(expected));
    }
    return mt;
}

} // namespace detail

Json to_json(const Manifest& m) {
    Json j = Json::object();
    j["schemaVersion"] = 2;
    if (!m.media_type.empty()) j["mediaType"] = m.media_type;
    if (!m.artifact_type.empty()) j["artifactType"] = m.artifact_type;
    j["config"] = to_json(m.config);
    j["layers"] = Json::array();
    for (const auto& l : m.layers)
        j["layers"].push_back(to_json(l));
    if (m.subject) j["subject"] = to_json(*m.subject);
    if (!m.annotations.empty()) j["annotations"] = sorted_object(m.annotations);
    return j;
}

std::string serialize(const Manifest& m) {
    return go_marshal(to_json(m));
}

Result<Manifest> parse_manifest(std::string_view bytes, std::string_view expected_media_type) {
    auto json = parse_strict_json(bytes);
    if (!json) return Unexpected("invalid image manifest: " + json.error());
    try {
        const Json& j = *json;
        require_object(j, "");
        // CVE-2021-41190: a document that is both a manifest and an index is refused.
        if (j.contains("manifests"))
            fail("", "a manifest must not have a \"manifests\" field (manifest/index confusion, "
                     "CVE-2021-41190)");
        read_schema_version(j);
        Manifest m;
        m.media_type = read_doc_media_type(j, expected_media_type, media_type::is_manifest,
                                           "an image manifest");
        m.artifact_type = opt_string(j, "artifactType", "").value_or("");
        auto config = member(j, "config");
        if (!config) fail("config", "is required");
        m.config = read_descriptor(*config, "config");
        auto layers = member(j, "layers");
        if (!layers) fail("layers", "is required");
        if (!layers->is_array()) fail("layers", "must be an array");
        for (std::size_t i = 0; i < layers->size(); ++i)
            m.layers.push_back(read_descriptor((*layers)[i], join("layers", i)));
        if (auto s = member(j, "subject")) m.subject = read_descriptor(*s, "subject");
        m.annotations = read_annotations(j, "");
        return m;
    } catch (const SchemaError& e) {
        return Unexpected("invalid image manifest: " + e.message);
    }
}

} // namespace factory::oci
