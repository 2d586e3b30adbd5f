// A deps step: the lockfiles copied into dest, then a command run there; both in one layer.
//
// Key: parent, kind=deps, platform, epoch, compression, copy (the lockfiles' item), inputs (the
// merkle digest of the lockfiles as they land in the layer), then the command's fields as a RUN
// step has them (arg, env, user, workdir, network, cache, secret). The rest of the source is not
// in the key: editing it never reinstalls the dependencies; changing a lockfile does.

#include <sys/stat.h>

#include <map>
#include <unordered_map>

#include "factory/builder/copy.hpp"
#include "factory/builder/key_fields.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

recipe::Step lockfile_copy(const recipe::DepsStep& deps) {
    recipe::CopyItem item;
    item.src = deps.lockfiles;
    item.dest = deps.dest.ends_with('/') ? deps.dest : deps.dest + "/";
    item.where = deps.where;
    recipe::Step copy;
    copy.kind = recipe::StepKind::copy;
    copy.copy.push_back(std::move(item));
    copy.where = deps.where;
    return copy;
}

std::string describe_lockfiles(const recipe::Step& copy) {
    std::string out;
    for (const auto& s : copy.copy.front().src)
        out += "src=" + s + ";";
    return out + "dest=" + copy.copy.front().dest + ";";
}

class DepsKind final : public LayerKind {
  public:
    std::string_view name() const override { return "deps"; }

    bool handles(const StepRef& s) const override {
        return !s.is_base() && s.step().kind == recipe::StepKind::deps;
    }

    std::string describe(const StepRef& s, const recipe::Recipe&) const override {
        const auto& deps = *s.step().deps;
        std::string cmd = deps.run.form == recipe::RunStep::Form::shell ? deps.run.script : "";
        for (const auto& a : deps.run.exec)
            cmd += (cmd.empty() ? "" : " ") + a;
        for (auto& c : cmd)
            if (c == '\n' || c == '\t') c = ' ';
        std::string out = "deps " + cmd + " in " + deps.dest;
        return out.size() > 100 ? out.substr(0, 97) + "..." : out;
    }

    void check(const StepRef& s, const BuildOptions& options) const override {
        for (const auto& sm : s.step().deps->run.secrets)
            if (!options.secrets.count(sm.id))
                throw Error(sm.where.str() + ": the step uses secret '" + sm.id +
                                "', but no --secret id=" + sm.id +
                                ",src=FILE (or env=VAR) was given",
                            ExitCode::usage);
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState& state) const override {
        const auto& recipe = *env.recipe;
        const auto& deps = *s.step().deps;
        StepKey k;
        k.step_id = step_identity(recipe.file, s.stage->name, *s.index);
        if (!state.tree_known && state.incomplete) {
            k.known = false;
            k.unknown_because = "an earlier step of the stage rebuilds first";
            return k;
        }
        env.ensure_tree(*s.stage, state);
        auto copy = lockfile_copy(deps);
        CopyContext cc;
        cc.context = recipe.context;
        cc.ignore = env.ignore;
        cc.named = &recipe.contexts;
        cc.lower = &state.tree;
        std::vector<struct stat> stats;
        cc.stats = &stats;
        k.entries = plan_copy(copy, cc);
        k.inputs = hash_inputs(k.entries, *env.stat_cache, env.options->threads, &stats);

        auto ctx = run_context(*s.stage, env, state);
        k.fields.add(field::parent, state.key);
        k.fields.add(field::kind, name());
        k.fields.add(field::platform, platform_string(recipe));
        k.fields.add(field::epoch, recipe.epoch);
        k.fields.add(field::compression, compression_name(recipe));
        k.fields.add(field::copy, describe_lockfiles(copy));
        k.fields.add(field::inputs, cache::merkle_digest(k.inputs));
        add_run_fields(k.fields, ctx, deps.run);
        if (!env.planning && !env.options->explain) return k;
        for (const auto& e : k.entries)
            if (!e.source.empty())
                k.sources["/" + e.path] =
                    fs::path(e.source).lexically_proximate(recipe.context).string();
        return k;
    }

    // The lockfiles go in as a layer below the command (a blob of the store, not of the
    // image), then into the step's layer with what the command made; a lockfile the command
    // rewrote is taken as it left it.
    StepMade make(const StepRef& s, StepEnv& env, StageState& state, StepKey& k) const override {
        auto lock_layer = env.write_layer(k.entries);
        auto ctx = run_context(*s.stage, env, state);
        oci::Descriptor desc;
        desc.media_type = lock_layer.media_type;
        desc.digest = lock_layer.digest;
        desc.size = static_cast<std::int64_t>(lock_layer.size);
        ctx.layers.push_back(desc);
        ctx.diff_ids.push_back(lock_layer.diff_id);
        ctx.runtime = &env.runtime();
        auto outcome = execute_run(ctx, s.step().deps->run, s.id());
        std::map<std::string, layer::Entry> merged;
        for (const auto& e : k.entries)
            merged[e.path] = e;
        for (auto& e : outcome.entries)
            merged[e.path] = std::move(e);
        std::vector<layer::Entry> entries;
        for (auto& [path, e] : merged)
            entries.push_back(std::move(e));
        return layer_made(env.write_layer(std::move(entries)));
    }

    std::string describe_fields(const cache::Fields& f) const override {
        std::string cmd;
        for (const auto& [t, v] : f)
            if (t == field::arg) cmd += (cmd.empty() ? "" : " ") + v;
        if (cmd.starts_with("/bin/sh -c ")) cmd = cmd.substr(11);
        return "deps " + cmd + " (" + field_value(f, field::copy) + ")";
    }
};

} // namespace

std::unique_ptr<StepKind> make_deps_kind() {
    return std::make_unique<DepsKind>();
}

} // namespace factory::builder
