// A stage's base bootstrapped from Debian packages (mmdebstrap), as one layer.
//
// Key: kind=debian, suite, variant, include (one per package), mirror, component (one each),
// architecture, platform, epoch, compression.

#include "factory/builder/debian_lock.hpp"
#include "factory/builder/key_fields.hpp"
#include "factory/builder/lock.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/sources/debian.hpp"
#include "factory/sources/debian_release.hpp"
#include "factory/sources/trust.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::builder {

namespace {

class DebianBaseKind final : public LayerKind {
  public:
    std::string_view name() const override { return "debian"; }

    bool handles(const StepRef& s) const override {
        return s.is_base() && s.stage->base.kind == recipe::Base::Kind::debian;
    }

    std::string describe(const StepRef& s, const recipe::Recipe& recipe) const override {
        auto spec = debian_spec(*s.stage, recipe);
        return "debian " + spec.suite + " " + spec.variant +
               (spec.include.empty() ? ""
                                     : " +" + std::to_string(spec.include.size()) + " packages");
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState&) const override {
        const auto& recipe = *env.recipe;
        auto spec = debian_spec(*s.stage, recipe);
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
        auto spec = debian_spec(*s.stage, *env.recipe);
        if (env.options->offline)
            throw Error(where.str() + ": debian base: offline: " + spec.suite + " from " +
                        spec.mirror + " is not in the store (build it once online)");
        const auto* pin = locked_pin(env, s);
        auto date = release_date(s, env, spec, pin);
        TempDir work(env.store->dir() / "tmp", "debian-");
        sources::BootstrapControl control;
        control.cancel = &interrupted();
        auto rootfs =
            sources::bootstrap_debian(spec, work.path(), env.recipe->epoch, env.output, control);
        throw_if_interrupted();
        if (!rootfs) throw Error(where.str() + ": debian base: " + rootfs.error());
        if (pin) check_packages(s, *pin, rootfs->dir);
        auto entries = sources::debian_entries(rootfs->dir, env.recipe->epoch);
        if (!entries) throw Error(where.str() + ": debian base: " + entries.error());
        auto made = layer_made(env.write_layer(std::move(*entries)));
        // For the lock file (debian_lock.hpp stored_debian); not part of the layer or the key.
        if (!date.empty()) made.result["release_date"] = date;
        return made;
    }

    // The mirror's Release date, fetched just before mmdebstrap reads the same file. Under
    // --locked a date other than the pinned one stops the build before the bootstrap (minutes
    // saved, and the message says how to keep the pinned date); unlocked, a mirror that can't
    // tell only leaves the date out of the lock.
    static std::string release_date(const StepRef& s, StepEnv& env, const sources::DebianSpec& spec,
                                    const recipe::Pin* pin) {
        sources::DownloadOptions o;
        o.ca_bundle = sources::host_ca_bundle();
        o.max_bytes = 16 << 20;
        auto date = sources::fetch_release_date(spec.mirror, spec.suite, o);
        bool pinned = pin && !pin->field("release-date").empty();
        if (!date) {
            if (pinned)
                throw Error(s.id() +
                            ": cannot check the mirror's Release date against the lock "
                            "file: " +
                            date.error());
            env.output("debian base: the lock will have no Release date: " + date.error());
            return "";
        }
        if (pinned)
            if (auto drift =
                    release_drift(*pin, spec.mirror, *date, env.recipe->given_file.string());
                !drift.empty())
                throw Error(drift);
        return *date;
    }

    void apply(const StepRef& s, StepEnv& env, StageState& state, StepKey& key,
               const nlohmann::json* result) const override {
        state.config = oci::ImageConfig(recipe_platform(*env.recipe));
        state.config.set_env_var("PATH",
                                 "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        LayerKind::apply(s, env, state, key, result);
    }

    // --locked: the packages bootstrapped now are the pinned ones, or the build stops naming
    // every one that moved (before a layer is written).
    static void check_packages(const StepRef& s, const recipe::Pin& pin,
                               const std::filesystem::path& rootfs) {
        auto lines = sources::resolved_packages(rootfs);
        if (!lines) throw Error(s.id() + ": " + lines.error());
        auto drift = package_drift(pin.id(), pin.packages, package_map(*lines));
        if (drift.empty()) return;
        std::string message = "the debian base drifted from the lock file (factory lock --update " +
                              pin.id() + " moves it):";
        for (const auto& d : drift)
            message += "\n  " + d;
        throw Error(message);
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
