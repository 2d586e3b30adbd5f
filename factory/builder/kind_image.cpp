// A stage's base from an OCI image layout or archive.
//
// Key: kind=base, source (oci | oci-archive), tag, content (sha256 of the layout's index.json
// or of the archive, through the stat cache), platform. The stage's later steps are keyed on the
// imported manifest's digest, not on this key.

#include "factory/builder/key_fields.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/oci/import.hpp"
#include "factory/oci/media_types.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

bool is_image(const recipe::Base& b) {
    return b.kind == recipe::Base::Kind::oci_layout || b.kind == recipe::Base::Kind::oci_archive;
}

std::string ref_of(const recipe::Base& base) {
    return base.path.string() + (base.tag.empty() ? "" : ":" + base.tag);
}

class ImageBaseKind final : public StepKind {
  public:
    std::string_view name() const override { return "base"; }

    bool handles(const StepRef& s) const override { return s.is_base() && is_image(s.stage->base); }

    std::string describe(const StepRef& s, const recipe::Recipe&) const override {
        return "import " + ref_of(s.stage->base);
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState&) const override {
        const auto& base = s.stage->base;
        auto file =
            base.kind == recipe::Base::Kind::oci_layout ? base.path / "index.json" : base.path;
        auto hex = cache::hash_file_cached(*env.stat_cache, file.string());
        if (!hex)
            throw Error(base.where.str() + ": base " + base.path.string() + ": " + hex.error());
        StepKey k;
        k.fields.add(field::kind, name());
        k.fields.add(field::source,
                     base.kind == recipe::Base::Kind::oci_layout ? "oci" : "oci-archive");
        k.fields.add(field::tag, base.tag);
        k.fields.add(field::content, "sha256:" + *hex);
        k.fields.add(field::platform, platform_string(*env.recipe));
        return k;
    }

    // Planning imports the image too: the later steps are keyed on its manifest and config.
    bool made_while_planning() const override { return true; }

    StepMade make(const StepRef& s, StepEnv& env, StageState&, StepKey&) const override {
        const auto& base = s.stage->base;
        auto platform = recipe_platform(*env.recipe);
        auto imported =
            base.kind == recipe::Base::Kind::oci_layout
                ? oci::import_oci_layout(base.path, base.tag, env.store->blobs(), platform)
                : oci::import_oci_archive(base.path, base.tag, env.store->blobs(), platform);
        if (!imported)
            throw Error(base.where.str() + ": base " + ref_of(base) + ": " + imported.error());
        StepMade made;
        made.result = nlohmann::json::object();
        made.result["manifest"] = oci::to_json(imported->manifest_desc);
        auto push_blob = [&](const oci::Descriptor& d) {
            if (auto hex = d.sha256_hex()) made.blobs.push_back(*hex);
        };
        push_blob(imported->manifest_desc);
        push_blob(imported->manifest.config);
        for (const auto& l : imported->manifest.layers)
            push_blob(l);
        made.bytes = static_cast<std::uint64_t>(imported->manifest_desc.size);
        return made;
    }

    void apply(const StepRef& s, StepEnv& env, StageState& state, StepKey&,
               const nlohmann::json* result) const override {
        const auto& base = s.stage->base;
        if (!result) throw Error(base.where.str() + ": base " + ref_of(base) + ": not imported");
        use_base_manifest(env, state, manifest_of(*result),
                          base.where.str() + ": base " + ref_of(base));
    }

    std::string summary(const nlohmann::json& result) const override {
        auto desc = manifest_of(result);
        return short_digest(desc.digest) + " imported";
    }

    std::uint64_t result_bytes(const nlohmann::json& result) const override {
        return static_cast<std::uint64_t>(manifest_of(result).size);
    }

    std::string describe_fields(const cache::Fields& f) const override {
        return "import " + field_value(f, field::content) +
               (field_value(f, field::tag).empty() ? "" : " :" + field_value(f, field::tag));
    }

  private:
    static oci::Descriptor manifest_of(const nlohmann::json& result) {
        return value_or_throw(oci::descriptor_from_json(result.at("manifest")));
    }
};

} // namespace

std::unique_ptr<StepKind> make_image_base_kind() {
    return std::make_unique<ImageBaseKind>();
}

} // namespace factory::builder
