#include <ctime>

#include "factory/builder/key_fields.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/oci/json.hpp"
#include "factory/oci/media_types.hpp"

namespace factory::builder {

const std::vector<std::unique_ptr<StepKind>>& step_kinds() {
    static const auto kinds = [] {
        std::vector<std::unique_ptr<StepKind>> k;
        k.push_back(make_image_base_kind());
        k.push_back(make_registry_base_kind());
        k.push_back(make_debian_base_kind());
        k.push_back(make_copy_kind());
        k.push_back(make_run_kind());
        k.push_back(make_git_kind());
        k.push_back(make_download_kind());
        k.push_back(make_deps_kind());
        return k;
    }();
    return kinds;
}

const StepKind& kind_of(const StepRef& step) {
    for (const auto& k : step_kinds())
        if (k->handles(step)) return *k;
    throw Error("step " + step.id() + ": no step kind handles it");
}

std::string field_value(const cache::Fields& fields, std::string_view tag) {
    for (const auto& [t, v] : fields)
        if (t == tag) return v;
    return "";
}

std::string describe_record(const cache::Fields& fields) {
    auto kind = field_value(fields, field::kind);
    for (const auto& k : step_kinds())
        if (kind == k->name() || kind == std::string(k->name()) + "-layer")
            return k->describe_fields(fields);
    return "";
}

std::string StepRef::id() const {
    if (!index) return stage->name + " base";
    return stage->name + " " + std::to_string(*index + 1) + "/" +
           std::to_string(stage->steps.size());
}

std::string platform_string(const recipe::Recipe& r) {
    return r.os + "/" + r.architecture + (r.variant.empty() ? "" : "/" + r.variant);
}

oci::Platform recipe_platform(const recipe::Recipe& r) {
    oci::Platform p;
    p.os = r.os;
    p.architecture = r.architecture;
    p.variant = r.variant;
    return p;
}

std::string compression_name(const recipe::Recipe& r) {
    return r.compression == recipe::Compression::zstd ? "zstd" : "gzip";
}

std::string short_digest(const std::string& digest) {
    auto colon = digest.find(':');
    return colon == std::string::npos ? digest : digest.substr(colon + 1, 12);
}

std::string rfc3339(std::int64_t epoch) {
    std::time_t t = static_cast<std::time_t>(epoch);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

StepMade layer_made(const layer::LayerInfo& info) {
    oci::Descriptor desc;
    desc.media_type = info.media_type;
    desc.digest = info.digest;
    desc.size = static_cast<std::int64_t>(info.size);
    StepMade made;
    made.result = nlohmann::json::object();
    made.result["layer"] = oci::to_json(desc);
    made.result["diff_id"] = info.diff_id;
    made.blobs.push_back(value_or_throw(desc.sha256_hex()));
    made.bytes = info.size;
    return made;
}

oci::Descriptor result_layer(const nlohmann::json& result) {
    return value_or_throw(oci::descriptor_from_json(result.at("layer")));
}

void add_result_layer(StageState& state, const nlohmann::json& result,
                      const std::string& created_by, const recipe::Recipe& recipe) {
    state.manifest.layers.push_back(result_layer(result));
    oci::History h;
    h.created = rfc3339(recipe.epoch);
    h.created_by = "factory " + created_by;
    state.config.add_layer(result.at("diff_id").get<std::string>(), h);
}

void use_base_manifest(StepEnv& env, StageState& state, const oci::Descriptor& desc,
                       const std::string& what) {
    auto manifest = env.store->read_manifest(desc);
    if (!manifest) throw Error(what + ": " + manifest.error());
    auto config = env.store->read_config(manifest->config, manifest->layers.size());
    if (!config) throw Error(what + ": " + config.error());
    state.manifest = *manifest;
    state.manifest.annotations.clear();
    state.manifest.media_type = std::string(oci::media_type::manifest);
    state.manifest.config.media_type = std::string(oci::media_type::config);
    for (auto& l : state.manifest.layers)
        l.media_type = std::string(oci::media_type::to_oci_layer(l.media_type));
    state.config = *config;
    state.tree_known = false;
    state.tree_layers = 0; // another image: its tree is read from its first layer
    state.key = desc.digest;
}

void LayerKind::apply(const StepRef& s, StepEnv& env, StageState& state, StepKey&,
                      const nlohmann::json* result) const {
    state.tree_known = false;
    if (result) add_result_layer(state, *result, describe(s, *env.recipe), *env.recipe);
}

std::string LayerKind::summary(const nlohmann::json& result) const {
    return layer_summary(result);
}

std::uint64_t LayerKind::result_bytes(const nlohmann::json& result) const {
    return static_cast<std::uint64_t>(result_layer(result).size);
}

std::string layer_summary(const nlohmann::json& result) {
    auto desc = result_layer(result);
    return short_digest(desc.digest) + " " + human_size(static_cast<std::uint64_t>(desc.size));
}

} // namespace factory::builder
