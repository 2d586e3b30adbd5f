// A stage's base bootstrapped from Debian packages (mmdebstrap), as one layer.
//
// Key: kind=debian, suite, variant, include (one per package), mirror, component (one each),
// architecture, platform, epoch, compression.

#include "factory/builder/key_fields.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/sources/debian.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

namespace {

std::string debian_arch(const recipe::Recipe& r) {
    if (r.architecture == "arm" && r.variant == "v7") return "armhf";
    if (r.architecture == "arm") return "armel";
    if (r.architecture == "386") return "i386";
    if (r.architecture == "ppc64le") return "ppc64el";
    return r.architecture;
}

sources::DebianSpec spec_of(const recipe::Stage& stage, const recipe::Recipe& recipe) {
    const auto& deb = stage.base.debian;
    sources::DebianSpec spec;
    spec.suite = deb.suite;
    spec.variant = deb.variant;
    spec.include = deb.include;
    spec.mirror = deb.mirror;
    spec.mirror = sources::resolve_mirror(spec);
    spec.components = deb.components;
    spec.architecture = deb.architecture.empty() ? debian_arch(recipe) : deb.architecture;
    return spec;
}

class DebianBaseKind final : public LayerKind {
  public:
    std::string_view name() const override { return "debian"; }

    bool handles(const StepRef& s) const override {
        return s.is_base() && s.stage->base.kind == recipe::Base::Kind::debian;
    }

    std::string describe(const StepRef& s, const recipe::Recipe& recipe) const override {
        auto spec = spec_of(*s.stage, recipe);
        return "debian " + spec.suite + " " + spec.variant +
               (spec.include.empty() ? ""
                                     : " +" + std::to_string(spec.include.size()) + " packages");
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState&) const override {
        const auto& recipe = *env.recipe;
        auto spec = spec_of(*s.stage, recipe);
        StepKey k;
        k.fields.add(field::kind, name());
        k.fields.add(field::suite, spec.suite);
        k.fields.add(field::variant, spec.variant);
        for (const auto& p : spec.include)
            k.fields.add(field::include, p);
        k.fields.add(field::mirror, spec.mirror);
        for (const auto& c : spec.components)
            k.fields.add(field::component, c);
        k.fields.add(field::architecture, spec.architecture);
        k.fields.add(field::platform, platform_string(recipe));
        k.fields.add(field::epoch, recipe.epoch);
        k.fields.add(field::compression, compression_name(recipe));
        k.step_id = step_identity(recipe.file, s.stage->name, std::size_t(-1));
        return k;
    }

    StepMade make(const StepRef& s, StepEnv& env, StageState&, StepKey&) const override {
        const auto& where = s.stage->base.where;
        TempDir work(env.store->dir() / "tmp", "debian-");
        auto rootfs = sources::bootstrap_debian(spec_of(*s.stage, *env.recipe), work.path(),
                                                env.recipe->epoch, env.output);
        if (!rootfs) throw Error(where.str() + ": debian base: " + rootfs.error());
        auto entries = sources::debian_entries(rootfs->dir);
        if (!entries) throw Error(where.str() + ": debian base: " + entries.error());
        return layer_made(env.write_layer(std::move(*entries)));
    }

    void apply(const StepRef& s, StepEnv& env, StageState& state, const StepKey& key,
               const nlohmann::json* result) const override {
        state.config = oci::ImageConfig(recipe_platform(*env.recipe));
        state.config.set_env_var("PATH",
                                 "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        LayerKind::apply(s, env, state, key, result);
    }

    std::string describe_fields(const cache::Fields& f) const override {
        std::string packages;
        for (const auto& [t, v] : f)
            if (t == field::include) packages += " " + v;
        return "debian " + field_value(f, field::suite) + " " + field_value(f, field::variant) +
               packages;
    }
};

} // namespace

std::unique_ptr<StepKind> make_debian_base_kind() {
    return std::make_unique<DebianBaseKind>();
}

} // namespace factory::builder
