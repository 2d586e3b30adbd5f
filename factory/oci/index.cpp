#include "factory/oci/index.hpp"

#include "factory/oci/descriptor_internal.hpp"

namespace factory::oci {

using namespace detail;

Json to_json(const Index& i) {
    Json j = Json::object();
    j["schemaVersion"] = 2;
    if (!i.media_type.empty()) j["mediaType"] = i.media_type;
    if (!i.artifact_type.empty()) j["artifactType"] = i.artifact_type;
    j["manifests"] = Json::array();
    for (const auto& m : i.manifests)
        j["manifests"].push_back(to_json(m));
    if (i.subject) j["subject"] = to_json(*i.subject);
    if (!i.annotations.empty()) j["annotations"] = sorted_object(i.annotations);
    return j;
}

std::string serialize(const Index& i) {
    return go_marshal(to_json(i));
}

Result<Index> parse_index(std::string_view bytes, std::string_view expected_media_type,
                          const JsonLimits& limits) {
    auto json = parse_strict_json(bytes, limits);
    if (!json) return Unexpected("invalid image index: " + json.error());
    try {
        const Json& j = *json;
        require_object(j, "");
        for (const char* k : {"config", "layers"})
            if (j.contains(k))
                fail("", std::string("an index must not have a \"") + k +
                             "\" field (manifest/index confusion, CVE-2021-41190)");
        read_schema_version(j);
        Index index;
        index.media_type =
            read_doc_media_type(j, expected_media_type, media_type::is_index, "an image index");
        index.artifact_type = opt_string(j, "artifactType", "").value_or("");
        auto manifests = member(j, "manifests");
        if (!manifests) fail("manifests", "is required");
        if (!manifests->is_array()) fail("manifests", "must be an array");
        for (std::size_t i = 0; i < manifests->size(); ++i)
            index.manifests.push_back(read_descriptor((*manifests)[i], join("manifests", i)));
        if (auto s = member(j, "subject")) index.subject = read_descriptor(*s, "subject");
        index.annotations = read_annotations(j, "");
        return index;
    } catch (const SchemaError& e) {
        return Unexpected("invalid image index: " + e.message);
    }
}

const Descriptor* select_platform(const Index& index, const Platform& want) {
    for (const auto& d : index.manifests) {
        if (!d.platform) continue;
        const auto& p = *d.platform;
        if (p.os != want.os || p.architecture != want.architecture) continue;
        if (!p.variant.empty() && !want.variant.empty() && p.variant != want.variant) continue;
        return &d;
    }
    return nullptr;
}

} // namespace factory::oci
