// A stage's base by registry reference: `base = "HOST/REPO:TAG"` or `…@sha256:…`.
//
// Key: kind=registry, reference (as written), content (the manifest digest the reference
// resolved to for this build: a moved tag changes it, an unmoved one costs one HEAD request),
// platform. As for an image base, the stage's later steps are keyed on the manifest's digest.
// Resolving and pulling happen while keying (registry::resolve_and_pull, under --pull), so the
// plan, `why` and the build all key on the digest the registry names now.

#include "factory/builder/key_fields.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/oci/json.hpp"
#include "factory/registry/base.hpp"

namespace factory::builder {

namespace {

bool is_registry(const recipe::Base& b) {
    return b.kind == recipe::Base::Kind::registry;
}

class RegistryBaseKind final : public StepKind {
  public:
    std::string_view name() const override { return "registry"; }

    bool handles(const StepRef& s) const override {
        return s.is_base() && is_registry(s.stage->base);
    }

    std::string describe(const StepRef& s, const recipe::Recipe&) const override {
        return "pull " + s.stage->base.reference;
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState&) const override {
        const auto& base = s.stage->base;
        auto options = env.options->registry;
        options.client.progress = env.progress;
        oci::Descriptor desc;
        try {
            desc = registry::resolve_and_pull(base.reference, *env.store,
                                              recipe_platform(*env.recipe), options);
        } catch (const Error& e) {
            throw Error(base.where.str() + ": base " + base.reference + ": " + e.what(), e.code());
        }
        StepKey k;
        k.fields.add(field::kind, name());
        k.fields.add(field::reference, base.reference);
        k.fields.add(field::content, desc.digest);
        k.fields.add(field::platform, platform_string(*env.recipe));
        k.resolved = oci::to_json(desc);
        return k;
    }

    // The image is in the store once keyed: later steps are keyed on its manifest and config.
    bool made_while_planning() const override { return true; }

    StepMade make(const StepRef&, StepEnv& env, StageState&, StepKey& key) const override {
        auto desc = value_or_throw(oci::descriptor_from_json(key.resolved));
        StepMade made;
        made.result = nlohmann::json::object();
        made.result["manifest"] = key.resolved;
        if (auto hex = desc.sha256_hex()) made.blobs.push_back(*hex);
        if (auto manifest = env.store->read_manifest(desc)) {
            if (auto hex = manifest->config.sha256_hex()) made.blobs.push_back(*hex);
            for (const auto& l : manifest->layers)
                if (auto hex = l.sha256_hex()) made.blobs.push_back(*hex);
        }
        made.bytes = static_cast<std::uint64_t>(desc.size);
        return made;
    }

    void apply(const StepRef& s, StepEnv& env, StageState& state, const StepKey&,
               const nlohmann::json* result) const override {
        const auto& base = s.stage->base;
        std::string what = base.where.str() + ": base " + base.reference;
        if (!result) throw Error(what + ": not pulled");
        use_base_manifest(env, state, manifest_of(*result), what);
    }

    std::string summary(const nlohmann::json& result) const override {
        return short_digest(manifest_of(result).digest) + " pulled";
    }

    std::uint64_t result_bytes(const nlohmann::json& result) const override {
        return static_cast<std::uint64_t>(manifest_of(result).size);
    }

    std::string describe_fields(const cache::Fields& f) const override {
        return "pull " + field_value(f, field::reference) + " " + field_value(f, field::content);
    }

  private:
    static oci::Descriptor manifest_of(const nlohmann::json& result) {
        return value_or_throw(oci::descriptor_from_json(result.at("manifest")));
    }
};

} // namespace

std::unique_ptr<StepKind> make_registry_base_kind() {
    return std::make_unique<RegistryBaseKind>();
}

} // namespace factory::builder
