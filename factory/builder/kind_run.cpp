// A RUN step: a command in a container on the stage's layers; its changes are one layer.
//
// Key: parent, kind=run, platform, epoch, compression, arg (one per argv word), env (one per
// variable the command sees), user, workdir, network, cache (one per cache mount: id=target),
// secret (one per secret: id=target or id=env:VAR). Never a secret's value nor a cache mount's
// content (docs/cache.md).

#include "factory/builder/key_fields.hpp"
#include "factory/builder/run_step.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"

namespace factory::builder {

// What a RUN step sees of the stage: the base's config with the stage's [config] env on top,
// so PATH and friends set there apply to the steps too. User and workdir come from the step, else
// the base: [config] user and workdir say how the finished image runs, and typically name a
// user or a directory that the steps create.
RunContext run_context(const recipe::Stage& stage, StepEnv& env, const StageState& state) {
    oci::ImageConfig c = state.config;
    if (stage.has_config)
        for (const auto& [k, v] : stage.config.env)
            c.set_env_var(k, v);
    RunContext ctx;
    ctx.store_root = env.store->dir();
    ctx.blobs = &env.store->blobs();
    ctx.layers = state.manifest.layers;
    ctx.diff_ids = state.config.diff_ids();
    ctx.env = c.env();
    ctx.user = state.config.user();
    ctx.workdir = state.config.working_dir();
    ctx.epoch = env.recipe->epoch;
    ctx.secrets = &env.options->secrets;
    ctx.on_output = env.output;
    return ctx;
}

// The fields of a command's key after parent, kind, platform, epoch and compression.
void add_run_fields(cache::KeyBuilder& kb, const RunContext& ctx, const recipe::RunStep& run) {
    for (const auto& a : run.argv())
        kb.add(field::arg, a);
    for (const auto& e : run_environment(ctx, run))
        kb.add(field::env, e);
    kb.add(field::user, run.user.empty() ? ctx.user : run.user);
    kb.add(field::workdir, run.workdir.empty() ? ctx.workdir : run.workdir);
    kb.add(field::network, run.network ? "host" : "none");
    for (const auto& c : run.cache)
        kb.add(field::cache, (c.id.empty() ? c.target : c.id) + "=" + c.target);
    for (const auto& sm : run.secrets)
        kb.add(field::secret, sm.id + "=" + (sm.target.empty() ? "env:" + sm.env : sm.target));
}

namespace {

class RunKind final : public LayerKind {
  public:
    std::string_view name() const override { return "run"; }

    bool handles(const StepRef& s) const override {
        return !s.is_base() && s.step().kind == recipe::StepKind::run;
    }

    std::string describe(const StepRef& s, const recipe::Recipe&) const override {
        const auto& run = *s.step().run;
        std::string cmd = run.form == recipe::RunStep::Form::shell ? run.script : "";
        if (run.form == recipe::RunStep::Form::exec)
            for (const auto& a : run.exec)
                cmd += (cmd.empty() ? "" : " ") + a;
        for (auto& c : cmd)
            if (c == '\n' || c == '\t') c = ' ';
        std::string out = "run " + cmd;
        return out.size() > 100 ? out.substr(0, 97) + "..." : out;
    }

    // A missing secret is found before any step runs, not after the earlier ones rebuilt.
    void check(const StepRef& s, const BuildOptions& options) const override {
        for (const auto& sm : s.step().run->secrets)
            if (!options.secrets.count(sm.id))
                throw Error(sm.where.str() + ": the step uses secret '" + sm.id +
                                "', but no --secret id=" + sm.id +
                                ",src=FILE (or env=VAR) was given",
                            ExitCode::usage);
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState& state) const override {
        const auto& run = *s.step().run;
        const auto& recipe = *env.recipe;
        auto ctx = run_context(*s.stage, env, state);
        StepKey k;
        k.fields.add(field::parent, state.key);
        k.fields.add(field::kind, name());
        k.fields.add(field::platform, platform_string(recipe));
        k.fields.add(field::epoch, recipe.epoch);
        k.fields.add(field::compression, compression_name(recipe));
        add_run_fields(k.fields, ctx, run);
        k.step_id = step_identity(recipe.file, s.stage->name, *s.index);
        return k;
    }

    StepMade make(const StepRef& s, StepEnv& env, StageState& state, StepKey&) const override {
        auto ctx = run_context(*s.stage, env, state);
        ctx.runtime = &env.runtime();
        auto outcome = execute_run(ctx, *s.step().run, s.id());
        return layer_made(env.write_layer(std::move(outcome.entries)));
    }

    std::string describe_fields(const cache::Fields& f) const override {
        std::string cmd;
        for (const auto& [t, v] : f)
            if (t == field::arg) cmd += (cmd.empty() ? "" : " ") + v;
        // The shell form's words are /bin/sh -c SCRIPT: the script is what the user wrote.
        if (cmd.starts_with("/bin/sh -c ")) cmd = cmd.substr(11);
        for (auto& c : cmd)
            if (c == '\n' || c == '\t') c = ' ';
        return "run " + cmd;
    }
};

} // namespace

std::unique_ptr<StepKind> make_run_kind() {
    return std::make_unique<RunKind>();
}

} // namespace factory::builder
