// A git step: a commit's tree (and with keep_git a working clone's .git) as one layer.
//
// Key: parent, kind=git, platform, epoch, compression, git-url (without credentials),
// git-commit (the ref resolved: one ls-remote, none for a commit id, --offline or --locked,
// where it is the lock file's pin; the mirror is fetched only when the step is made), git-ref
// (with keep_git only), dest, submodules, keep-git, depth, mtime. An unmoved branch is a hit; a
// moved one rebuilds this step and the ones after it.

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
        k.resolved["name"] = resolved.name; // what make() fetches the commit by
        return k;
    }

    // The commit comes from the key, not from a second ls-remote: the layer is the commit the
    // key names even if the branch moved in between. The mirror is made to hold it here, not
    // while keying: a cache hit needs no mirror (nor a git process to look into one).
    StepMade make(const StepRef& s, StepEnv& env, StageState&, StepKey& k) const override {
        const auto& step = *s.step().git;
        auto ctx = source_context(env);
        std::string name = k.resolved.is_object() ? k.resolved.value("name", "") : "";
        auto commit = field_value(k.fields.fields(), field::git_commit);
        sources::ResolvedRef resolved;
        try {
            resolved = fetch_git(ctx, step, commit, name, s.id());
        } catch (const Error& e) {
            throw locked_fetch_error(s, env, commit, e);
        }
        resolved.name = field_value(k.fields.fields(), field::git_ref);
        auto out = execute_git(ctx, step, resolved, s.id());
        return layer_made(env.write_layer_at(std::move(out.entries), out.epoch, out.content.get()));
    }

    // Under --locked the pinned commit (no network: make() fetches it into the mirror if it
    // must); a branch or tag online, what it names upstream now (one ls-remote); else — a
    // commit id, --offline — resolved in the mirror.
    static sources::ResolvedRef resolve(const StepRef& s, StepEnv& env) {
        const auto& step = *s.step().git;
        auto ctx = source_context(env);
        const auto* pin = locked_pin(env, s);
        if (!pin) {
            if (ctx.offline || sources::is_commit_id(step.ref))
                return resolve_git(ctx, step, s.id());
            return peek_git(ctx, step, s.id());
        }
        sources::ResolvedRef resolved;
        resolved.url = value_or_throw(sources::parse_remote_url(step.url)).url;
        resolved.ref = step.ref;
        resolved.commit = pin->field("commit");
        resolved.name = pin->field("name");
        if (!sources::is_commit_id(resolved.commit))
            throw Error(s.id() + ": the lock file's commit '" + resolved.commit +
                        "' is not a commit id (40 hex digits)");
        return resolved;
    }

    // A pinned commit the remote does not have is the lock file's doing (a hand edit, a
    // force-push that dropped it): the error says so and how to pin what the ref names now.
    static Error locked_fetch_error(const StepRef& s, const StepEnv& env, const std::string& commit,
                                    const Error& e) {
        const auto* pin = locked_pin(env, s);
        if (!pin || !commit_not_found(e, commit)) return e;
        auto recipe = env.recipe->given_file.string();
        return Error(std::string(e.what()) + ": it is the pin " + pin->id() + " of " +
                         recipe::lockfile_path(recipe).string() + " (factory lock --update " +
                         pin->id() + " " + recipe + " pins what " + s.step().git->ref +
                         " names now)",
                     e.code());
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
