// A copy step: files from the context, a named context or another stage, as one layer.
//
// Key: parent, kind=copy, platform, epoch, compression, copy (one per item: its src, dest, mode,
// uid, gid, from, context), inputs (the merkle digest of every file as it lands in the layer).
// A copy layer's bytes are a function of its entries alone, so it is also recorded under a
// content key (kind=copy-layer, epoch, compression, inputs): when only an earlier step changed,
// the layer is found by content and reused, never written again.

#include <sys/stat.h>

#include "factory/builder/copy.hpp"
#include "factory/builder/key_fields.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

std::string describe_item(const recipe::CopyItem& item) {
    std::string out;
    for (const auto& s : item.src)
        out += "src=" + s + ";";
    out += "dest=" + item.dest + ";";
    if (item.mode) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%04o", *item.mode);
        out += std::string("mode=") + buf + ";";
    }
    if (item.uid) out += "uid=" + std::to_string(*item.uid) + ";";
    if (item.gid) out += "gid=" + std::to_string(*item.gid) + ";";
    if (!item.from_stage.empty()) out += "from=" + item.from_stage + ";";
    if (!item.context.empty()) out += "context=" + item.context + ";";
    return out;
}

cache::KeyBuilder content_key(const recipe::Recipe& recipe, const std::string& inputs) {
    cache::KeyBuilder content;
    content.add(field::kind, "copy-layer");
    content.add(field::epoch, recipe.epoch);
    content.add(field::compression, compression_name(recipe));
    content.add(field::inputs, inputs);
    return content;
}

class CopyKind final : public LayerKind {
  public:
    std::string_view name() const override { return "copy"; }

    bool handles(const StepRef& s) const override {
        return !s.is_base() && s.step().kind == recipe::StepKind::copy;
    }

    std::string describe(const StepRef& s, const recipe::Recipe&) const override {
        std::string out = "copy";
        for (const auto& item : s.step().copy) {
            std::string src;
            for (const auto& x : item.src)
                src += (src.empty() ? "" : " ") + x;
            if (!item.from_stage.empty()) src = item.from_stage + ":" + src;
            if (!item.context.empty()) src = item.context + ":" + src;
            out += " " + src + " -> " + item.dest;
            if (out.size() > 120) return out.substr(0, 117) + "...";
        }
        return out;
    }

    std::vector<std::string> reads(const StepRef& s) const override {
        std::vector<std::string> out;
        for (const auto& item : s.step().copy)
            if (!item.from_stage.empty()) out.push_back(item.from_stage);
        return out;
    }

    StepKey key(const StepRef& s, StepEnv& env, StageState& state) const override {
        const auto& recipe = *env.recipe;
        StepKey k;
        k.step_id = step_identity(recipe.file, s.stage->name, *s.index);
        // While planning, a stage whose RUN step would rebuild has no files to read yet (a
        // stage of copies has: its tree holds the host files).
        for (const auto& from : reads(s))
            if (const StageState* src = env.stage(from); src && !src->tree_known)
                return unknown(std::move(k), "stage '" + from + "' rebuilds first");
        if (!state.tree_known && state.incomplete)
            return unknown(std::move(k), "an earlier step of the stage rebuilds first");
        env.ensure_tree(*s.stage, state);

        CopyContext ctx;
        ctx.context = recipe.context;
        ctx.ignore = env.ignore;
        ctx.named = &recipe.contexts;
        ctx.stage_tree = [&env](const std::string& name) -> const Tree* {
            const StageState* st = env.stage(name);
            return st ? &st->tree : nullptr;
        };
        ctx.lower = &state.tree;
        std::vector<struct stat> stats;
        ctx.stats = &stats;
        ctx.threads = env.options->threads;
        ctx.content_later = &k.content_from;
        k.entries = plan_copy(s.step(), ctx);
        k.inputs = hash_inputs(k.entries, *env.stat_cache, env.options->threads, &stats);

        k.fields.add(field::parent, state.key);
        k.fields.add(field::kind, name());
        k.fields.add(field::platform, platform_string(recipe));
        k.fields.add(field::epoch, recipe.epoch);
        k.fields.add(field::compression, compression_name(recipe));
        for (const auto& item : s.step().copy)
            k.fields.add(field::copy, describe_item(item));
        k.fields.add(field::inputs, cache::merkle_digest(k.inputs));
        if (!env.planning && !env.options->explain) return k;
        const std::string context = recipe.context.string() + "/";
        for (const auto& e : k.entries)
            if (!e.source.empty())
                k.sources["/" + e.path] =
                    e.source.starts_with(context)
                        ? e.source.substr(context.size())
                        : fs::path(e.source).lexically_proximate(recipe.context).string();
        return k;
    }

    StepMade make(const StepRef&, StepEnv& env, StageState&, StepKey& k) const override {
        auto content = content_key(*env.recipe, cache::merkle_digest(k.inputs));
        if (auto same = env.actions->lookup(content.hex())) {
            StepMade made;
            made.result = same->result;
            made.blobs = same->blobs;
            made.bytes = static_cast<std::uint64_t>(result_layer(made.result).size);
            made.reused = true;
            return made;
        }
        auto entries = k.entries; // the tree keeps its own copy (apply)
        take_content_out(entries, k.content_from);
        // The content digests the key was made of name the layer's blocks without reading
        // them, so a rebuild resumes after the unchanged ones (layer/block_plan.hpp).
        for (std::size_t i = 0; i < entries.size() && i < k.inputs.size(); ++i)
            entries[i].sha256 = k.inputs[i].sha256;
        auto made = layer_made(env.write_layer(std::move(entries)));
        env.put_record(content, made.result, made.blobs);
        return made;
    }

    void apply(const StepRef& s, StepEnv& env, StageState& state, StepKey& k,
               const nlohmann::json* result) const override {
        state.tree.apply(std::move(k.entries));
        // Files left in another stage's layers stay readable from this stage's tree too (a
        // stage copying from this one takes them from there).
        for (const auto& [path, from] : k.content_from)
            if (const auto* e = state.tree.find(path); e && e->source.empty())
                state.tree.adopt_content(path, *from.tree, from.path);
        if (result) add_result_layer(state, *result, describe(s, *env.recipe), *env.recipe);
        if (state.tree_known) state.tree_layers = state.manifest.layers.size(); // its own too
    }

    std::string describe_fields(const cache::Fields& f) const override {
        if (field_value(f, field::kind) == "copy-layer")
            return "layer of copied files " + field_value(f, field::inputs).substr(0, 19);
        std::string out;
        for (const auto& [t, v] : f)
            if (t == field::copy) out += (out.empty() ? "" : " ") + v;
        return out;
    }

  private:
    // The content of the files planned without it, out of their layers, one pass a stage.
    static void take_content_out(std::vector<layer::Entry>& entries,
                                 const std::map<std::string, TreeContent>& content_from) {
        if (content_from.empty()) return;
        std::map<const Tree*, std::vector<std::string>> wanted;
        for (const auto& [path, from] : content_from)
            wanted[from.tree].push_back(from.path);
        std::map<const Tree*, std::map<std::string, std::string>> got;
        for (const auto& [tree, paths] : wanted)
            got[tree] = tree->contents(paths);
        for (auto& e : entries) {
            if (!e.source.empty()) continue;
            auto it = content_from.find(e.path);
            if (it == content_from.end()) continue;
            auto& files = got[it->second.tree];
            auto file = files.find(it->second.path);
            if (file == files.end())
                throw Error("the content of /" + it->second.path + " for /" + e.path +
                            " is no longer in its stage's layers");
            e.source = file->second;
        }
    }

    static StepKey unknown(StepKey k, std::string why) {
        k.known = false;
        k.unknown_because = std::move(why);
        return k;
    }
};

} // namespace

std::unique_ptr<StepKind> make_copy_kind() {
    return std::make_unique<CopyKind>();
}

} // namespace factory::builder
