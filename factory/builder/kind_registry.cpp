// A stage's base by registry reference: `base = "HOST/REPO:TAG"` or `…@sha256:…`.
//
// Key: kind=registry, reference (as written), content (the manifest digest the reference
// resolved to for this build: a moved tag changes it, an unmoved one costs one HEAD request),
// platform. As for an image base, the stage's later steps are keyed on the manifest's digest.
// Resolving and pulling happen while keying (registry::resolve_and_pull, under --pull), so the
// plan, `why` and the build all key on the digest the registry names now.

#include "factory/builder/key_fields.hpp"
#include "factory/builder/base_registry.hpp"
#include "factory/builder/lock.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/oci/digest.hpp"
#include "factory/oci/json.hpp"
#include "factory/registry/base.hpp"
#include "factory/registry/reference.hpp"
#include "factory/util/files.hpp"

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
        oci::Descriptor desc;
        try {
            desc = resolve(s, env);
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

    void apply(const StepRef& s, StepEnv& env, StageState& state, StepKey&,
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
    // Under --locked the pinned manifest: from the store when it holds the blob (no request),
    // else pulled by digest (no tag lookup). --offline: the store only.
    static oci::Descriptor resolve(const StepRef& s, StepEnv& env) {
        const auto& base = s.stage->base;
        auto options = base_registry_options(*env.options, env.progress);
        bool offline = env.options->offline;
        std::string reference = base.reference;
        if (const auto* pin = locked_pin(env, s)) {
            auto digest = pin->field("digest");
            if (auto stored = stored_manifest(*env.store, digest)) return *stored;
            if (offline)
                throw Error("offline: the locked manifest " + digest + " is not in the store");
            auto ref = value_or_throw(registry::parse_reference(base.reference), ExitCode::usage);
            ref.digest = digest;
            reference = ref.str();
        }
        try {
            return registry::resolve_and_pull(reference, *env.store, recipe_platform(*env.recipe),
                                              options);
        } catch (const Error& e) {
            if (!offline) throw;
            throw Error("offline: the image is not in the store (build once online, or factory "
                        "pull " +
                            base.reference + ")",
                        e.code());
        }
    }

    // The manifest blob `digest` when the store has it, described from its own bytes.
    static std::optional<oci::Descriptor> stored_manifest(oci::Layout& store,
                                                          const std::string& digest) {
        auto hex = oci::sha256_hex_of(digest);
        if (!hex || !store.blobs().has(*hex)) return std::nullopt;
        auto bytes = read_file(store.blobs().path(*hex), 4u << 20);
        if (!bytes) return std::nullopt;
        auto json = nlohmann::json::parse(*bytes, nullptr, false);
        if (json.is_discarded() || !json.contains("mediaType") || !json["mediaType"].is_string())
            return std::nullopt;
        return oci::describe(json["mediaType"].get<std::string>(), *bytes);
    }

    static oci::Descriptor manifest_of(const nlohmann::json& result) {
        return value_or_throw(oci::descriptor_from_json(result.at("manifest")));
    }
};

} // namespace

std::unique_ptr<StepKind> make_registry_base_kind() {
    return std::make_unique<RegistryBaseKind>();
}

} // namespace factory::builder
