#pragma once
// A step kind: what one kind of step (a copy, a RUN, a stage's base) is keyed on and how it is
// made. The planner (plan.hpp) and the executor (execute.hpp) know no kind: they call these
// functions in this order for every step, and everything common — the cache lookup, the per-key
// lock, the action record, the stats, `why`, the progress — is theirs.
//
//   check()    while planning, before anything runs: what the command line must provide
//   key()      the step's cache key (fields, input files), from the stage below it
//   make()     on a miss only: the work (write a layer, import an image …)
//   apply()    the result (recorded or just made) onto the stage: layers, config, tree
//
// Adding a step kind: write kind_NAME.cpp with a class deriving from StepKind (LayerKind when
// its result is one layer) and a `std::unique_ptr<StepKind> make_NAME_kind()`, and add one line
// to step_kinds.cpp. Its key fields are named in key_fields.hpp. A kind that reads a new part
// of a recipe step says so in handles(); a kind for a stage's base handles `StepRef::base()`.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/action_store.hpp"
#include "cache/key.hpp"
#include "cache/stat_cache.hpp"
#include "factory/builder/builder.hpp"
#include "factory/builder/key_fields.hpp"
#include "factory/builder/run_step.hpp"
#include "factory/builder/tree.hpp"
#include "factory/layer/entry.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/layout.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/recipe/lockfile.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/runtime/runtime.hpp"
#include "factory/util/pattern.hpp"

namespace factory::builder {

// What a stage is so far: its image and its file tree.
struct StageState {
    oci::Manifest manifest;
    oci::ImageConfig config;
    Tree tree;
    bool tree_known = true; // false until a base's or RUN step's layers are read into the tree
    // How many of manifest.layers (the first ones) the tree holds, and whether their content
    // can be had from it (Tree::contents): a tree is brought up to date by the layers after.
    std::size_t tree_layers = 0;
    bool tree_content = false;
    std::string key;         // cache key of the last step (or the base's identity)
    bool missed = false;     // the last step missed the cache
    bool incomplete = false; // planning: a step would rebuild, so its layer is not there yet
};

// One step of a stage: `index` is its position, or nullopt for the stage's base.
struct StepRef {
    const recipe::Stage* stage = nullptr;
    std::optional<std::size_t> index;

    bool is_base() const noexcept { return !index; }
    const recipe::Step& step() const { return stage->steps.at(*index); }
    // "main 2/3", "main base"
    std::string id() const;
};

// The services a kind may use; the executor provides them, one per recipe being built.
struct StepEnv {
    const recipe::Recipe* recipe = nullptr;
    const BuildOptions* options = nullptr;
    oci::Layout* store = nullptr;
    cache::StatCache* stat_cache = nullptr;
    cache::ActionStore* actions = nullptr;
    const IgnoreRules* ignore = nullptr; // nullptr when the recipe has none
    bool planning = false;               // true: nothing may be built (dry run, `why`)
    // --locked: the recipe's pins, checked against it (lock.hpp locked_pin); else nullptr.
    const recipe::Lockfile* lock = nullptr;
    // A finished stage, or nullptr.
    std::function<const StageState*(const std::string&)> stage;
    // Reads the stage's layers into its tree when it isn't known (content too when others copy
    // from the stage). Throws Error.
    std::function<void(const recipe::Stage&, StageState&)> ensure_tree;
    std::function<const runtime::RuntimeChoice&()> runtime;
    // Writes a layer blob into the store. Throws Error.
    std::function<layer::LayerInfo(std::vector<layer::Entry>)> write_layer;
    // The same with every mtime at `epoch` (when set) instead of the image's (a git step's
    // mtime = "commit"), and the contents of the files `content` provides read from it (a git
    // step's blobs streamed from the mirror; layer/content_source.hpp), when not null.
    std::function<layer::LayerInfo(std::vector<layer::Entry>, std::optional<std::int64_t>,
                                   layer::ContentSource*)>
        write_layer_at;
    // One line of a running step's output.
    std::function<void(std::string_view)> output;
    Progress* progress = nullptr; // events of a kind's own (a registry base's resolved digest)
    // Publishes a record under another key than the step's (a copy layer's content key).
    std::function<void(const cache::KeyBuilder&, const nlohmann::json& result,
                       const std::vector<std::string>& blobs)>
        put_record;
};

// What a step is keyed on.
struct StepKey {
    cache::KeyBuilder fields;
    std::vector<cache::InputFile> inputs; // files copied (copy steps), for the record
    // image path → source file, for `why`: filled only when a miss will be explained
    // (env.planning or options->explain), so a cached step doesn't pay a map of its files.
    std::map<std::string, std::string> sources;
    std::vector<layer::Entry> entries; // a layer planned while keying (copy steps)
    // Of those, the files whose content is still in another stage's layer: destination path →
    // where (copy.hpp CopyContext::content_later). make() takes them out; apply() hands the
    // places on to the stage's tree.
    std::map<std::string, TreeContent> content_from;
    // The step's identity for `why`: its recipe, stage and position.
    std::string step_id;
    // false while planning when the key depends on a layer that is not built yet (a copy on
    // top of, or from, a stage whose RUN step would rebuild): the step is then shown without
    // a key, and so is every step after it.
    bool known = true;
    std::string unknown_because; // when !known: "stage 'builder' rebuilds first"
    // What key() found out that make() needs (a registry base: its manifest's descriptor).
    nlohmann::json resolved;
};

// What make() produced: the action record's result and the blobs it needs.
struct StepMade {
    nlohmann::json result;
    std::vector<std::string> blobs; // sha256 hex
    std::uint64_t bytes = 0;        // written, or reused when `reused`
    bool reused = false;            // found by content under another key: nothing written
};

class StepKind {
  public:
    virtual ~StepKind() = default;
    // "copy", "run", "base", "debian": the key's kind field, the stats' kind, the plan's.
    virtual std::string_view name() const = 0;
    virtual bool handles(const StepRef& step) const = 0;
    // One line for the progress and the plan: "copy src -> /src".
    virtual std::string describe(const StepRef& step, const recipe::Recipe& recipe) const = 0;
    // The stages whose files the step reads (copy `from`).
    virtual std::vector<std::string> reads(const StepRef&) const { return {}; }
    // Throws Error (ExitCode::usage) for what the build would only find when the step runs.
    virtual void check(const StepRef&, const BuildOptions&) const {}
    // true: make() runs while planning too, because later steps are keyed on its result (an
    // image base's manifest and config); it must write nothing but content-addressed blobs.
    virtual bool made_while_planning() const { return false; }
    // Throws Error.
    virtual StepKey key(const StepRef& step, StepEnv& env, StageState& state) const = 0;
    virtual StepMade make(const StepRef& step, StepEnv& env, StageState& state,
                          StepKey& key) const = 0;
    // The result onto the stage. `result` is nullptr while planning a step that would rebuild:
    // apply what is known without it (a copy's entries to the tree, a base's config).
    // state.key is already the step's key; a kind whose stages are keyed otherwise sets it.
    // The key is spent: apply() is its last use, and may move what it keeps out of it (a
    // copy's entries into the tree).
    virtual void apply(const StepRef& step, StepEnv& env, StageState& state, StepKey& key,
                       const nlohmann::json* result) const = 0;
    // The progress line's result: "ab12cd34ef56 3.1 MB".
    virtual std::string summary(const nlohmann::json& result) const = 0;
    // The size the stats count on a hit.
    virtual std::uint64_t result_bytes(const nlohmann::json& result) const = 0;
    // What a record of this kind was made from, in a few words, from its key fields alone
    // (`cache ls`): "run make && cp app /out/app".
    virtual std::string describe_fields(const cache::Fields& fields) const = 0;
};

// A kind whose result is one layer ({"layer": descriptor, "diff_id": …}, layer_made()): its
// summary and size, and an apply() that appends the layer to the stage and leaves the stage's
// tree to be read back from its layers when a copy needs it.
class LayerKind : public StepKind {
  public:
    void apply(const StepRef& step, StepEnv& env, StageState& state, StepKey& key,
               const nlohmann::json* result) const override;
    std::string summary(const nlohmann::json& result) const override;
    std::uint64_t result_bytes(const nlohmann::json& result) const override;
};

// Every kind, in the order they are asked (step_kinds.cpp).
const std::vector<std::unique_ptr<StepKind>>& step_kinds();
// The kind that handles the step. Throws Error if none does.
const StepKind& kind_of(const StepRef& step);

// Shared by the kinds.
std::string platform_string(const recipe::Recipe& r);
oci::Platform recipe_platform(const recipe::Recipe& r);
std::string compression_name(const recipe::Recipe& r);
std::string short_digest(const std::string& digest);
// RFC 3339 of a Unix time, as Go's time.Time marshals a UTC time with whole seconds.
std::string rfc3339(std::int64_t epoch);
// A layer result {"layer": descriptor, "diff_id": …} and back.
StepMade layer_made(const layer::LayerInfo& info);
oci::Descriptor result_layer(const nlohmann::json& result);
// Appends the result's layer to the stage (manifest, diff_id, history "factory WHAT").
void add_result_layer(StageState& state, const nlohmann::json& result,
                      const std::string& created_by, const recipe::Recipe& recipe);
std::string layer_summary(const nlohmann::json& result);
// The stage starts from the stored image `desc` (a base): its manifest as OCI, its config; the
// stage's later steps are keyed on the manifest's digest. `what` starts error messages
// ("recipe.toml:3:8: base REF"). Throws Error.
void use_base_manifest(StepEnv& env, StageState& state, const oci::Descriptor& desc,
                       const std::string& what);

// What a command of the stage sees (kind_run.cpp; deps steps run commands too): the base's
// config env with the stage's [config] env on top, the base's user and workdir.
RunContext run_context(const recipe::Stage& stage, StepEnv& env, const StageState& state);
// A command's key fields after parent, kind, platform, epoch and compression: arg, env, user,
// workdir, network, cache, secret.
void add_run_fields(cache::KeyBuilder& kb, const RunContext& ctx, const recipe::RunStep& run);

// The step kinds' constructors (one per kind_*.cpp).
std::unique_ptr<StepKind> make_image_base_kind();
std::unique_ptr<StepKind> make_registry_base_kind();
std::unique_ptr<StepKind> make_debian_base_kind();
std::unique_ptr<StepKind> make_copy_kind();
std::unique_ptr<StepKind> make_run_kind();
std::unique_ptr<StepKind> make_git_kind();
std::unique_ptr<StepKind> make_download_kind();
std::unique_ptr<StepKind> make_deps_kind();

} // namespace factory::builder
