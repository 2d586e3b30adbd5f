#include "factory/builder/check.hpp"

#include "cache/action_store.hpp"
#include "cache/lock.hpp"
#include "factory/builder/execute.hpp"
#include "factory/builder/plan.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/export/layer_diff.hpp"
#include "factory/oci/layout.hpp"
#include "factory/recipe/parser.hpp"
#include "factory/registry/reference.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

recipe::Recipe load(const fs::path& path, const BuildOptions& options) {
    recipe::LoadOptions lo;
    lo.args = options.args;
    lo.source_date_epoch = options.source_date_epoch;
    return recipe::load(path, lo);
}

// What a step's record says it made: a layer's diff_id, or a base image's manifest digest.
std::string made_digest(const nlohmann::json& result) {
    if (result.contains("diff_id")) return result.at("diff_id").get<std::string>();
    if (result.contains("manifest")) return result.at("manifest").value("digest", "");
    return "";
}

std::string step_where(const recipe::Stage& stage, const PlannedStage& planned, std::size_t p) {
    if (planned.has_base_step && p == 0) return stage.base.where.str();
    std::size_t i = p - (planned.has_base_step ? 1 : 0);
    return i < stage.steps.size() ? stage.steps[i].where.str() : stage.where.str();
}

// The inputs the rebuild takes from the store rather than fetching them again: the git
// mirrors and downloads (verified by commit and sha256 when a step uses them), and each
// registry base, its blobs linked and its ref set, so that `--pull never` finds it.
void share_inputs(const fs::path& real, oci::Layout& store, oci::Layout& scratch,
                  const recipe::Recipe& recipe) {
    for (const char* dir : {"git", "downloads"}) {
        std::error_code ec;
        if (!fs::is_directory(real / dir, ec)) continue;
        fs::create_directory_symlink(fs::absolute(real / dir), scratch.dir() / dir, ec);
        if (ec) throw Error("cannot share " + (real / dir).string() + ": " + ec.message());
    }
    for (const auto& stage : recipe.stages) {
        if (stage.base.kind != recipe::Base::Kind::registry) continue;
        auto ref = registry::parse_reference(stage.base.reference);
        if (!ref) continue;
        for (const auto& [name, desc] : store.refs()) {
            if (name != ref->str()) continue;
            for (const auto& d : value_or_throw(store.closure(desc))) {
                auto hex = d.sha256_hex();
                if (!hex || !store.blobs().has(*hex)) continue;
                value_or_throw(scratch.blobs().add_file(store.blobs().path(*hex), *hex,
                                                        static_cast<std::uint64_t>(d.size)));
            }
            scratch.set_ref(name, desc);
        }
    }
}

BuildOptions scratch_options(const BuildOptions& options, const fs::path& root) {
    BuildOptions o = options;
    o.store_root = root;
    o.outputs.clear();
    o.max_size.reset();
    o.explain = false;
    o.sources_from_store = true; // git and download steps: the store's mirrors and downloads
    o.registry.policy = registry::PullPolicy::never;
    return o;
}

// The two layers of a differing step, entry by entry; the rebuilt blob is linked into the
// store so that both can be handed to diffoscope once the scratch store is gone.
void compare_layers(CheckReport& report, oci::Layout& store, oci::Layout& scratch,
                    const nlohmann::json& stored, const nlohmann::json& rebuilt) {
    auto a = result_layer(stored);
    auto b = result_layer(rebuilt);
    auto ha = value_or_throw(a.sha256_hex());
    auto hb = value_or_throw(b.sha256_hex());
    report.files =
        exporter::diff_layer_entries(exporter::read_layer_entries(store.blobs().path(ha), a),
                                     exporter::read_layer_entries(scratch.blobs().path(hb), b));
    value_or_throw(
        store.blobs().add_file(scratch.blobs().path(hb), hb, static_cast<std::uint64_t>(b.size)));
    report.stored_blob = store.blobs().path(ha);
    report.rebuilt_blob = store.blobs().path(hb);
}

void compare(CheckReport& report, const recipe::Recipe& recipe, const Plan& stored_plan,
             const Plan& rebuilt_plan, oci::Layout& store, oci::Layout& scratch,
             cache::ActionStore& stored_actions, cache::ActionStore& rebuilt_actions) {
    for (std::size_t s = 0; s < stored_plan.stages.size(); ++s) {
        const auto& a = stored_plan.stages[s];
        const auto& b = rebuilt_plan.stages[s];
        for (std::size_t p = 0; p < a.steps.size() && p < b.steps.size(); ++p) {
            CheckedStep c;
            c.id = a.steps[p].id;
            c.what = a.steps[p].what;
            c.kind = a.steps[p].kind;
            c.where = step_where(recipe.stages[s], a, p);
            c.built_first = !a.steps[p].cached;
            auto ra = stored_actions.lookup(a.steps[p].key);
            auto rb = rebuilt_actions.lookup(b.steps[p].key);
            if (!ra || !rb)
                throw Error(c.id + ": the record of " + (ra ? "the rebuild" : "the store") +
                            " is missing (pruned while checking?)");
            c.stored = made_digest(ra->result);
            c.rebuilt = made_digest(rb->result);
            if (!c.same()) {
                ++report.differing;
                if (!report.first_difference) {
                    report.first_difference = report.steps.size();
                    if (ra->result.contains("layer") && rb->result.contains("layer"))
                        compare_layers(report, store, scratch, ra->result, rb->result);
                }
            }
            report.steps.push_back(std::move(c));
        }
    }
}

} // namespace

CheckReport check_recipe(const fs::path& recipe_path, const BuildOptions& options,
                         Progress& progress) {
    auto recipe = load(recipe_path, options);
    BuildSession session(options.jobs);
    Plan stored_plan = plan_steps(recipe, options);
    auto built = execute(recipe, stored_plan, options, progress, session, ExecMode::build);

    CheckReport report;
    report.image = built.name + ":" + built.tags.front();
    report.manifest = built.manifest_digest;
    const auto& root = options.store_root;
    // Shared, as a build's: no prune removes what is compared while the rebuild runs.
    auto hold = cache::StoreLock::build(root);
    auto store = oci::Layout::open(root, {.tmp_dir = root / "tmp"});
    TempDir scratch_dir(root / "tmp", "check-");
    fs::create_directories(scratch_dir.path() / "tmp");
    auto scratch = oci::Layout::create(scratch_dir.path(), {.tmp_dir = scratch_dir.path() / "tmp"});
    share_inputs(root, store, scratch, recipe);
    progress.event("check", "rebuilding " + report.image + " in an empty store");

    auto options2 = scratch_options(options, scratch_dir.path());
    Plan rebuilt_plan = plan_steps(recipe, options2);
    execute(recipe, rebuilt_plan, options2, progress, session, ExecMode::build, "check ");

    cache::ActionStore stored_actions(root, store.blobs());
    cache::ActionStore rebuilt_actions(scratch_dir.path(), scratch.blobs());
    compare(report, recipe, stored_plan, rebuilt_plan, store, scratch, stored_actions,
            rebuilt_actions);
    return report;
}

} // namespace factory::builder
