#include "factory/builder/plan.hpp"

#include <nlohmann/json.hpp>

#include "factory/builder/copy.hpp"
#include "factory/builder/execute.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/recipe/parser.hpp"

namespace factory::builder {

namespace {

PlannedStep planned_step(const StepRef& ref, const recipe::Recipe& recipe,
                         const BuildOptions& options, Checks checks) {
    const StepKind& kind = kind_of(ref);
    if (checks == Checks::yes) kind.check(ref, options);
    PlannedStep p;
    p.kind = std::string(kind.name());
    p.id = ref.id();
    p.what = kind.describe(ref, recipe);
    p.inputs = kind.reads(ref);
    return p;
}

// A copy of a host file that is missing (or leads out of its root) is a recipe error like any
// other: found here, it stops a command of several recipes before any of them is built.
void check_copy_sources(const recipe::Recipe& recipe) {
    IgnoreRules ignore = recipe_ignore_rules(recipe);
    CopyContext ctx;
    ctx.context = recipe.context;
    ctx.ignore = ignore.empty() ? nullptr : &ignore;
    ctx.named = &recipe.contexts;
    for (const auto& stage : recipe.stages)
        for (const auto& step : stage.steps)
            if (step.kind == recipe::StepKind::copy) check_host_sources(step, ctx);
}

void add_need(std::vector<std::string>& needs, const std::string& stage) {
    for (const auto& n : needs)
        if (n == stage) return;
    needs.push_back(stage);
}

} // namespace

Plan plan_steps(const recipe::Recipe& recipe, const BuildOptions& options, Checks checks) {
    Plan plan;
    plan.recipe = recipe.file;
    plan.image = recipe.name + ":" + recipe.tags.front();
    if (checks == Checks::yes) check_copy_sources(recipe);
    for (const auto& stage : recipe.stages) { // the parser orders them by dependency
        PlannedStage ps;
        ps.name = stage.name;
        if (stage.base.kind == recipe::Base::Kind::stage) add_need(ps.needs, stage.base.stage);
        StepRef base{&stage, std::nullopt};
        bool base_is_step = stage.base.kind != recipe::Base::Kind::scratch &&
                            stage.base.kind != recipe::Base::Kind::stage;
        if (base_is_step) {
            ps.steps.push_back(planned_step(base, recipe, options, checks));
            ps.has_base_step = true;
        }
        for (std::size_t i = 0; i < stage.steps.size(); ++i) {
            ps.steps.push_back(planned_step({&stage, i}, recipe, options, checks));
            for (const auto& from : ps.steps.back().inputs)
                add_need(ps.needs, from);
        }
        plan.stages.push_back(std::move(ps));
    }
    return plan;
}

Plan plan_recipe(const std::filesystem::path& recipe_path, const BuildOptions& options,
                 Progress& progress, Checks checks) {
    recipe::LoadOptions lo;
    lo.args = options.args;
    lo.source_date_epoch = options.source_date_epoch;
    auto recipe = recipe::load(recipe_path, lo);
    Plan plan = plan_steps(recipe, options, checks);
    plan.recipe = recipe_path;
    BuildSession session(1);
    execute(recipe, plan, options, progress, session, ExecMode::plan);
    return plan;
}

std::string plan_text(const Plan& plan) {
    std::string out = plan.recipe.string() + " → " + plan.image + "\n";
    for (const auto& stage : plan.stages) {
        out += "stage " + stage.name;
        if (!stage.needs.empty()) {
            out += " (after";
            for (const auto& n : stage.needs)
                out += " " + n;
            out += ")";
        }
        out += "\n";
        for (const auto& s : stage.steps) {
            char line[64];
            std::snprintf(line, sizeof line, "  %-6s %-14s %-12s ", s.kind.c_str(), s.id.c_str(),
                          s.key.empty() ? "-" : s.key.substr(0, 12).c_str());
            out += line;
            out += (s.cached ? "cached  " : "build   ") + s.what + "\n";
        }
    }
    return out;
}

std::string plan_json(const std::vector<Plan>& plans) {
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    for (const auto& plan : plans) {
        nlohmann::ordered_json p;
        p["recipe"] = plan.recipe.string();
        p["image"] = plan.image;
        p["stages"] = nlohmann::ordered_json::array();
        for (const auto& stage : plan.stages) {
            nlohmann::ordered_json st;
            st["name"] = stage.name;
            st["needs"] = stage.needs;
            st["steps"] = nlohmann::ordered_json::array();
            for (const auto& s : stage.steps) {
                nlohmann::ordered_json j;
                j["kind"] = s.kind;
                j["id"] = s.id;
                j["what"] = s.what;
                j["inputs"] = s.inputs;
                j["key"] = s.key.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(s.key);
                j["cached"] = s.cached;
                j["reasons"] = s.reasons;
                nlohmann::ordered_json fields = nlohmann::ordered_json::array();
                for (const auto& [tag, value] : s.fields)
                    fields.push_back({tag, value});
                j["fields"] = std::move(fields);
                st["steps"].push_back(std::move(j));
            }
            p["stages"].push_back(std::move(st));
        }
        all.push_back(std::move(p));
    }
    return all.dump(2) + "\n";
}

} // namespace factory::builder
