// A git step: a commit's tree (and with keep_git a working clone's .git) as one layer.
//
// Key: parent, kind=git, platform, epoch, compression, git-url (without credentials),
// git-commit (the ref resolved: one ls-remote, none for a commit id, --offline or --locked,
// where it is the lock file's pin), git-ref (with
// keep_git only), dest, submodules, keep-git, depth, mtime. An unmoved branch is a hit; a moved
// one rebuilds this step and the ones after it.

#include "factory/builder/key_fields.hpp"
#include "factory/builder/lock.hpp"
#include "factory/builder/source_step.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"

namespace factory::builder {

namespace {

SourceContext source_context(StepEnv& env) {
    return builder::source_context(*env.options, env.output);
}

class GitKind final : public LayerKind {
  public:
    std::string_view name() const override { return "git"; }

    bool handles(const StepRef& s) const override {
        return !s.is_base() && s.step().kind == recipe::StepKind::git;
    }

    std::string describe(const StepRef& s, const recipe::Recipe&) const override {
        return describe_git(*s.step().git);
    }

    // A missing --secret is found before any step runs.
    void check(const StepRef& s, const BuildOptions& options) const override {
        const auto& secret = s.step().git->secret;
        if (!secret.empty() && !options.secrets.count(secret))
            throw Error(s.step().git->where.str() + ": the step uses secret '" + secret +
                            "', but no --secret id=" + secret + ",src=FILE (or env=VAR) was given",
                        ExitCode::usage);
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState& state) const override {
        const auto& recipe = *env.recipe;
        auto resolved = resolve(s, env);
        StepKey k;
        k.step_id = step_identity(recipe.file, s.stage->name, *s.index);
        k.fields.add(field::parent, state.key);
        k.fields.add(field::kind, name());
        k.fields.add(field::platform, platform_string(recipe));
        k.fields.add(field::epoch, recipe.epoch);
        k.fields.add(field::compression, compression_name(recipe));
        add_git_key(k.fields, *s.step().git, resolved);
        return k;
    }

    // The commit comes from the key, not from a second ls-remote: the layer is the commit the
    // key names even if the branch moved in between.
    StepMade make(const StepRef& s, StepEnv& env, StageState&, StepKey& k) const override {
        const auto& step = *s.step().git;
        auto ctx = source_context(env);
        sources::ResolvedRef resolved;
        resolved.url = value_or_throw(sources::parse_remote_url(step.url)).url;
        resolved.commit = field_value(k.fields.fields(), field::git_commit);
        resolved.name = field_value(k.fields.fields(), field::git_ref);
        resolved.ref = step.ref;
        resolved.mirror = sources::GitMirrors::mirror_path(ctx.store_root, resolved.url);
        auto out = execute_git(ctx, step, resolved, s.id());
        if (out.epoch) return layer_made(env.write_layer_at(std::move(out.entries), *out.epoch));
        return layer_made(env.write_layer(std::move(out.entries)));
    }

    // Under --locked the pinned commit, fetched into the mirror only when it lacks it (no
    // ls-remote); else the ref resolved now.
    static sources::ResolvedRef resolve(const StepRef& s, StepEnv& env) {
        const auto* pin = locked_pin(env, s);
        if (!pin) return resolve_git(source_context(env), *s.step().git, s.id());
        recipe::GitStep pinned = *s.step().git;
        pinned.ref = pin->field("commit");
        if (!sources::is_commit_id(pinned.ref))
            throw Error(s.id() + ": the lock file's commit '" + pinned.ref +
                        "' is not a commit id (40 hex digits)");
        auto resolved = resolve_git(source_context(env), pinned, s.id());
        resolved.ref = s.step().git->ref;
        resolved.name = pin->field("name");
        return resolved;
    }

    std::string describe_fields(const cache::Fields& f) const override {
        return "git " + field_value(f, field::git_url) + " " +
               field_value(f, field::git_commit).substr(0, 12) + " -> /" +
               field_value(f, field::dest);
    }
};

} // namespace

std::unique_ptr<StepKind> make_git_kind() {
    return std::make_unique<GitKind>();
}

} // namespace factory::builder
