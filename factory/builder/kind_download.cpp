// A download step: a file verified by its sha256 (or an archive unpacked) as one layer.
//
// Key: parent, kind=download, platform, epoch, compression, sha256, dest, name (a dest ending
// in '/'), mode, extract — not the URL: the same file from another server is the same layer.

#include "factory/builder/key_fields.hpp"
#include "factory/builder/source_step.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"

namespace factory::builder {

namespace {

class DownloadKind final : public LayerKind {
  public:
    std::string_view name() const override { return "download"; }

    bool handles(const StepRef& s) const override {
        return !s.is_base() && s.step().kind == recipe::StepKind::download;
    }

    std::string describe(const StepRef& s, const recipe::Recipe&) const override {
        return describe_download(*s.step().download);
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState& state) const override {
        const auto& recipe = *env.recipe;
        StepKey k;
        k.step_id = step_identity(recipe.file, s.stage->name, *s.index);
        k.fields.add(field::parent, state.key);
        k.fields.add(field::kind, name());
        k.fields.add(field::platform, platform_string(recipe));
        k.fields.add(field::epoch, recipe.epoch);
        k.fields.add(field::compression, compression_name(recipe));
        add_download_key(k.fields, *s.step().download);
        return k;
    }

    StepMade make(const StepRef& s, StepEnv& env, StageState&, StepKey&) const override {
        auto out =
            execute_download(source_context(*env.options, env.output), *s.step().download, s.id());
        return layer_made(env.write_layer(std::move(out.entries)));
    }

    std::string describe_fields(const cache::Fields& f) const override {
        return "download sha256:" + field_value(f, field::sha256).substr(0, 12) + " -> " +
               field_value(f, field::dest);
    }
};

} // namespace

std::unique_ptr<StepKind> make_download_kind() {
    return std::make_unique<DownloadKind>();
}

} // namespace factory::builder
