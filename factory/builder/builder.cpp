#include "factory/builder/builder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <set>

#include "cache/action_store.hpp"
#include "cache/gc.hpp"
#include "cache/key.hpp"
#include "cache/lock.hpp"
#include "cache/stat_cache.hpp"
#include "cache/stats.hpp"
#include "factory/builder/copy.hpp"
#include "factory/builder/run_step.hpp"
#include "factory/builder/source_step.hpp"
#include "factory/sources/debian.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/tree.hpp"
#include "factory/export/export.hpp"
#include "factory/export/target.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/import.hpp"
#include "factory/oci/layout.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/recipe/parser.hpp"
#include "factory/util/files.hpp"
#include "factory/util/pattern.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

// What a finished (or running) stage is: its image so far and its file tree.
struct StageState {
    oci::Manifest manifest;
    oci::ImageConfig config;
    Tree tree;
    bool tree_known = true; // false until a base's layers have been read into the tree
    std::string key;        // cache key of the last step (or the base's identity)
    bool missed = false;    // the last step missed the cache
};

enum class Mode { build, explain };

// RFC 3339 of a Unix time, as Go's time.Time marshals a UTC time with whole seconds.
std::string rfc3339(std::int64_t epoch) {
    std::time_t t = static_cast<std::time_t>(epoch);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string short_digest(const std::string& digest) {
    auto colon = digest.find(':');
    return colon == std::string::npos ? digest : digest.substr(colon + 1, 12);
}

std::string describe_copy(const recipe::Step& step) {
    std::string out = "copy";
    for (const auto& item : step.copy) {
        std::string src;
        for (const auto& s : item.src)
            src += (src.empty() ? "" : " ") + s;
        if (!item.from_stage.empty()) src = item.from_stage + ":" + src;
        if (!item.context.empty()) src = item.context + ":" + src;
        out += " " + src + " -> " + item.dest;
        if (out.size() > 120) return out.substr(0, 117) + "...";
    }
    return out;
}

class Builder {
  public:
    Builder(const recipe::Recipe& recipe, const BuildOptions& options, Progress& progress,
            Mode mode)
        : recipe_(recipe), options_(options), progress_(progress), mode_(mode),
          store_(open_store(options.store_root)),
          lock_(cache::StoreLock::build(options.store_root, lock_wait())),
          scratch_(store_.dir() / "tmp", "build-"),
          stat_cache_(cache::StatCache::load(options.store_root / "statcache" / "v1")),
          actions_(options.store_root, store_.blobs()) {
        load_ignore_rules();
        find_stage_sources();
    }
    ~Builder() {
        try {
            stat_cache_.save(); // what was hashed stays useful even if the build failed
        } catch (const std::exception&) {
        }
    }

    BuildResult run();
    std::vector<StepReport> explain();

  private:
    cache::LockWait lock_wait() {
        cache::LockWait w;
        w.on_wait = [this] { progress_.event("wait", "the store is being pruned; waiting"); };
        return w;
    }

    static oci::Layout open_store(const fs::path& root) {
        std::error_code ec;
        fs::create_directories(root / "tmp", ec);
        if (ec) throw Error("cannot create the store at " + root.string() + ": " + ec.message());
        return oci::Layout::create(root, {.tmp_dir = root / "tmp"});
    }

    void load_ignore_rules();
    void find_stage_sources();
    StageState start_stage(const recipe::Stage& stage);
    void import_base(const recipe::Stage& stage, StageState& state);
    void ensure_tree(const recipe::Stage& stage, StageState& state);
    void run_stages();
    void run_copy(const recipe::Stage& stage, std::size_t index, StageState& state);
    void run_run(const recipe::Stage& stage, std::size_t index, StageState& state);
    void run_git(const recipe::Stage& stage, std::size_t index, StageState& state);
    void run_download(const recipe::Stage& stage, std::size_t index, StageState& state);
    void run_deps(const recipe::Stage& stage, std::size_t index, StageState& state);
    void add_run_key(cache::KeyBuilder& kb, const RunContext& ctx, const recipe::RunStep& run,
                     const std::string& user, const std::string& workdir);
    RunContext run_context(const recipe::Stage& stage, StageState& state, const std::string& id);
    SourceContext source_context(const std::string& id);
    void import_debian(const recipe::Stage& stage, StageState& state);
    const runtime::RuntimeChoice& runtime();
    struct StepInfo {
        std::string id, what, step_id, key;
        bool parent_missed = false;
        std::string kind; // for the stats: "copy", "run"
    };
    void record_layer(const cache::KeyBuilder& kb,
                      const std::pair<oci::Descriptor, std::string>& made);
    std::pair<oci::Descriptor, std::string>
    reuse_layer(const cache::ActionRecord& found, const cache::KeyBuilder& kb,
                const std::string& step_id, const std::vector<cache::InputFile>& inputs);
    void finish_step(StageState& state, const StepInfo& step, const cache::KeyBuilder& kb,
                     const std::vector<cache::InputFile>& inputs,
                     const std::map<std::string, std::string>& sources,
                     const std::function<std::pair<oci::Descriptor, std::string>()>& make);
    void add_layer(StageState& state, const oci::Descriptor& desc, const std::string& diff_id,
                   const std::string& created_by);
    // Writes a layer from entries and records it under key; returns the descriptor.
    std::pair<oci::Descriptor, std::string>
    commit_layer(std::vector<layer::Entry> entries, const cache::KeyBuilder& kb,
                 const std::string& step_id, const std::vector<cache::InputFile>& inputs,
                 const std::string& kind, std::optional<std::int64_t> epoch = std::nullopt);
    std::optional<cache::ActionRecord> lookup_or_lock(const std::string& key,
                                                      std::optional<cache::KeyLock>& lock);
    void remember_step(const std::string& step_id, const std::string& key);
    layer::LayerInfo write_layer_blob(std::vector<layer::Entry> entries,
                                      std::optional<std::int64_t> epoch = std::nullopt);
    void apply_config(const recipe::Stage& stage, StageState& state);
    oci::Descriptor publish(StageState& state);
    void write_outputs(const oci::Descriptor& manifest);

    const recipe::Recipe& recipe_;
    const BuildOptions& options_;
    Progress& progress_;
    Mode mode_;
    oci::Layout store_;
    cache::StoreLock lock_; // shared: no prune while this build runs
    TempDir scratch_;       // extracted base-layer content for copies from stages
    cache::StatCache stat_cache_;
    cache::ActionStore actions_;
    cache::Stats stats_;
    std::vector<StepReport> reports_;
    std::optional<runtime::RuntimeChoice> runtime_;
    IgnoreRules ignore_;
    std::set<std::string> copied_from_; // stages other stages copy files from
    std::map<std::string, StageState> done_;
    std::size_t extracted_dirs_ = 0;
};

void Builder::load_ignore_rules() {
    if (recipe_.ignore_file.empty()) return;
    auto path = recipe_.context / recipe_.ignore_file;
    auto text = read_file(path, 1 << 20);
    if (!text) throw Error("cannot read ignore file: " + text.error(), ExitCode::usage);
    ignore_ = IgnoreRules::parse(*text, path.string());
}

void Builder::find_stage_sources() {
    for (const auto& stage : recipe_.stages)
        for (const auto& step : stage.steps)
            for (const auto& item : step.copy)
                if (!item.from_stage.empty()) copied_from_.insert(item.from_stage);
    // A stage used as a base by a copied-from stage needs its content too.
    for (auto it = recipe_.stages.rbegin(); it != recipe_.stages.rend(); ++it)
        if (copied_from_.count(it->name) && it->base.kind == recipe::Base::Kind::stage)
            copied_from_.insert(it->base.stage);
}

std::string platform_string(const recipe::Recipe& r) {
    return r.os + "/" + r.architecture + (r.variant.empty() ? "" : "/" + r.variant);
}

oci::Platform recipe_platform(const recipe::Recipe& r) {
    oci::Platform p;
    p.os = r.os;
    p.architecture = r.architecture;
    p.variant = r.variant;
    return p;
}

// What identifies a base's content without reading its layers: the source's index.json (a
// layout) or the archive's sha256 (through the stat cache), plus the tag and platform.
std::string base_source_digest(const recipe::Base& base, cache::StatCache& stat_cache) {
    auto file = base.kind == recipe::Base::Kind::oci_layout ? base.path / "index.json" : base.path;
    auto hex = cache::hash_file_cached(stat_cache, file.string());
    if (!hex) throw Error(base.where.str() + ": base " + base.path.string() + ": " + hex.error());
    return "sha256:" + *hex;
}

void Builder::import_base(const recipe::Stage& stage, StageState& state) {
    const auto& base = stage.base;
    std::string id = stage.name + " base";
    std::string ref = base.path.string() + (base.tag.empty() ? "" : ":" + base.tag);
    progress_.step_start(id, "import " + ref);
    cache::KeyBuilder kb;
    kb.add("kind", "base");
    kb.add("source", base.kind == recipe::Base::Kind::oci_layout ? "oci" : "oci-archive");
    kb.add("tag", base.tag);
    kb.add("content", base_source_digest(base, stat_cache_));
    kb.add("platform", platform_string(recipe_));
    std::string key = kb.hex();

    oci::Descriptor manifest_desc;
    std::optional<cache::KeyLock> lock;
    auto record = lookup_or_lock(key, lock);
    if (record) {
        manifest_desc = value_or_throw(oci::descriptor_from_json(record->result.at("manifest")));
        stats_.hit("base", static_cast<std::uint64_t>(manifest_desc.size));
    } else {
        auto imported = base.kind == recipe::Base::Kind::oci_layout
                            ? oci::import_oci_layout(base.path, base.tag, store_.blobs(),
                                                     recipe_platform(recipe_))
                            : oci::import_oci_archive(base.path, base.tag, store_.blobs(),
                                                      recipe_platform(recipe_));
        if (!imported) {
            progress_.step_failed(id, imported.error());
            throw Error(base.where.str() + ": base " + ref + ": " + imported.error());
        }
        manifest_desc = imported->manifest_desc;
        cache::ActionRecord rec;
        rec.key = key;
        rec.fields = kb.fields();
        rec.result = nlohmann::json::object();
        rec.result["manifest"] = nlohmann::json::parse(oci::to_json(manifest_desc).dump());
        auto push_blob = [&](const oci::Descriptor& d) {
            if (auto hex = d.sha256_hex()) rec.blobs.push_back(*hex);
        };
        push_blob(manifest_desc);
        push_blob(imported->manifest.config);
        for (const auto& l : imported->manifest.layers)
            push_blob(l);
        actions_.put(rec);
        stats_.miss("base", static_cast<std::uint64_t>(manifest_desc.size));
    }
    auto manifest = store_.read_manifest(manifest_desc);
    if (!manifest) throw Error(base.where.str() + ": base " + ref + ": " + manifest.error());
    auto config = store_.read_config(manifest->config, manifest->layers.size());
    if (!config) throw Error(base.where.str() + ": base " + ref + ": " + config.error());
    state.manifest = *manifest;
    state.manifest.annotations.clear();
    state.manifest.media_type = std::string(oci::media_type::manifest);
    state.manifest.config.media_type = std::string(oci::media_type::config);
    for (auto& l : state.manifest.layers)
        l.media_type = std::string(oci::media_type::to_oci_layer(l.media_type));
    state.config = *config;
    state.tree_known = false;
    state.key = manifest_desc.digest;
    progress_.step_done(id,
                        short_digest(manifest_desc.digest) + " " +
                            std::to_string(state.manifest.layers.size()) + " layers",
                        record.has_value());
}

StageState Builder::start_stage(const recipe::Stage& stage) {
    StageState state;
    switch (stage.base.kind) {
    case recipe::Base::Kind::scratch:
        state.config = oci::ImageConfig(recipe_platform(recipe_));
        state.key = "scratch";
        break;
    case recipe::Base::Kind::oci_layout:
    case recipe::Base::Kind::oci_archive:
        import_base(stage, state);
        break;
    case recipe::Base::Kind::debian:
        import_debian(stage, state);
        break;
    case recipe::Base::Kind::stage: {
        auto it = done_.find(stage.base.stage);
        if (it == done_.end())
            throw Error(stage.base.where.str() + ": stage '" + stage.base.stage +
                            "' is not built before '" + stage.name + "'",
                        ExitCode::usage);
        state = it->second;
        break;
    }
    }
    return state;
}

// Reads the base layers into the stage's tree: metadata always (to resolve destinations
// through symlinks such as /bin → usr/bin), content only for stages others copy from.
void Builder::ensure_tree(const recipe::Stage& stage, StageState& state) {
    if (state.tree_known) return;
    fs::path content;
    if (copied_from_.count(stage.name)) {
        content = scratch_.path() / ("base-" + std::to_string(extracted_dirs_++));
        fs::create_directories(content);
    }
    state.tree = Tree{};
    for (const auto& layer : state.manifest.layers) {
        auto hex = layer.sha256_hex();
        if (!hex) throw Error("base layer " + layer.digest + ": " + hex.error());
        if (auto ok = store_.blobs().verify(*hex); !ok) throw Error(ok.error());
        state.tree.apply_layer_blob(store_.blobs().path(*hex), content);
    }
    state.tree_known = true;
}

layer::LayerInfo Builder::write_layer_blob(std::vector<layer::Entry> entries,
                                           std::optional<std::int64_t> epoch) {
    auto temp = store_.blobs().tmp_dir() / (std::string(temp_prefix) + "layer-" + unique_suffix());
    Fd fd(::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) throw Error("cannot create " + temp.string() + ": " + errno_string(errno));
    struct Unlink {
        fs::path path;
        bool armed = true;
        ~Unlink() {
            if (armed) ::unlink(path.c_str());
        }
    } guard{temp};
    layer::LayerOptions lo;
    lo.epoch = epoch.value_or(recipe_.epoch);
    lo.compression = recipe_.compression == recipe::Compression::zstd ? layer::Compression::zstd
                                                                      : layer::Compression::gzip;
    lo.threads = options_.threads;
    auto info = layer::write_layer(std::move(entries), lo, fd.get());
    if (!info) throw Error("writing layer: " + info.error());
    fd.reset();
    auto hex = info->digest.substr(info->digest.find(':') + 1);
    store_.blobs().commit_temp(temp, hex);
    guard.armed = false;
    return *info;
}

// A hit returns the record. On a miss, takes the key's lock (waiting while another build
// makes the same step) and looks again: that build's result is then reused.
std::optional<cache::ActionRecord> Builder::lookup_or_lock(const std::string& key,
                                                           std::optional<cache::KeyLock>& lock) {
    if (auto hit = actions_.lookup(key)) return hit;
    if (mode_ == Mode::explain) return std::nullopt;
    lock.emplace(cache::KeyLock::acquire(store_.dir(), key));
    return actions_.lookup(key);
}

// Points the step's identity at the key it resolved to, for `why` (skipped when unchanged,
// so a no-op build writes nothing).
void Builder::remember_step(const std::string& step_id, const std::string& key) {
    auto current = read_file(actions_.step_path(step_id), 256);
    if (current && current->starts_with(key)) return;
    actions_.set_last_for_step(step_id, key);
}

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

void Builder::run_copy(const recipe::Stage& stage, std::size_t index, StageState& state) {
    const auto& step = stage.steps[index];
    std::string id =
        stage.name + " " + std::to_string(index + 1) + "/" + std::to_string(stage.steps.size());
    std::string what = describe_copy(step);
    progress_.step_start(id, what);
    try {
        ensure_tree(stage, state);
        CopyContext ctx;
        ctx.context = recipe_.context;
        ctx.ignore = ignore_.empty() ? nullptr : &ignore_;
        ctx.named = &recipe_.contexts;
        ctx.stage_tree = [this](const std::string& name) -> const Tree* {
            auto it = done_.find(name);
            return it == done_.end() ? nullptr : &it->second.tree;
        };
        ctx.lower = &state.tree;
        std::unordered_map<std::string, struct stat> stats;
        ctx.stats = &stats;
        auto entries = plan_copy(step, ctx);
        auto inputs = hash_inputs(entries, stat_cache_, options_.threads, &stats);

        cache::KeyBuilder kb;
        kb.add("parent", state.key);
        kb.add("kind", "copy");
        kb.add("platform", platform_string(recipe_));
        kb.add("epoch", recipe_.epoch);
        kb.add("compression", recipe_.compression == recipe::Compression::zstd ? "zstd" : "gzip");
        for (const auto& item : step.copy)
            kb.add("copy", describe_item(item));
        kb.add("inputs", cache::merkle_digest(inputs));
        std::string key = kb.hex();
        std::string step_id = step_identity(recipe_.file, stage.name, index);
        bool parent_missed = state.missed;
        state.tree.apply(entries);
        state.key = key;

        std::map<std::string, std::string> sources; // for `why`: image path → source file
        for (const auto& e : entries)
            if (!e.source.empty())
                sources["/" + e.path] =
                    fs::path(e.source).lexically_proximate(recipe_.context).string();
        // A copy layer's bytes are a function of its entries alone (parent directories and
        // symlinked destinations are resolved into them), so when only an earlier step changed,
        // the layer is found by content and reused, never written again.
        cache::KeyBuilder content;
        content.add("kind", "copy-layer");
        content.add("epoch", recipe_.epoch);
        content.add("compression",
                    recipe_.compression == recipe::Compression::zstd ? "zstd" : "gzip");
        content.add("inputs", cache::merkle_digest(inputs));
        finish_step(state, {id, what, step_id, key, parent_missed, "copy"}, kb, inputs, sources,
                    [&] {
                        if (auto same = actions_.lookup(content.hex()))
                            return reuse_layer(*same, kb, step_id, inputs);
                        auto made = commit_layer(std::move(entries), kb, step_id, inputs, "copy");
                        record_layer(content, made);
                        return made;
                    });
    } catch (const Error& e) {
        progress_.step_failed(id, e.what());
        throw;
    }
}

// The common end of a step whose key is known: reuse the recorded layer on a hit; on a miss say
// why when asked (or, explaining, stop there), else build it with `make` and record it.
void Builder::finish_step(StageState& state, const StepInfo& step, const cache::KeyBuilder& kb,
                          const std::vector<cache::InputFile>& inputs,
                          const std::map<std::string, std::string>& sources,
                          const std::function<std::pair<oci::Descriptor, std::string>()>& make) {
    std::optional<cache::KeyLock> lock;
    auto record = lookup_or_lock(step.key, lock);
    if (!record && (mode_ == Mode::explain || options_.explain)) {
        auto reasons = explain_miss(kb.fields(), inputs, actions_.last_for_step(step.step_id),
                                    step.parent_missed, sources);
        if (mode_ == Mode::explain) {
            reports_.push_back({step.id, step.what, false, reasons});
            state.missed = true;
            progress_.step_done(step.id, "would rebuild");
            return;
        }
        for (const auto& r : reasons)
            progress_.event("why", step.id + " (" + step.what + "): " + r);
    }
    oci::Descriptor desc;
    std::string diff_id;
    if (record) {
        desc = value_or_throw(oci::descriptor_from_json(record->result.at("layer")));
        diff_id = record->result.at("diff_id").get<std::string>();
        stats_.hit(step.kind, static_cast<std::uint64_t>(desc.size));
        if (mode_ == Mode::explain) reports_.push_back({step.id, step.what, true, {}});
    } else {
        std::tie(desc, diff_id) = make();
    }
    if (mode_ == Mode::build) remember_step(step.step_id, step.key);
    state.missed = !record;
    add_layer(state, desc, diff_id, step.what);
    progress_.step_done(step.id,
                        short_digest(desc.digest) + " " +
                            human_size(static_cast<std::uint64_t>(desc.size)),
                        record.has_value());
}

// Records `made` under another key too (the content key of a copy layer).
void Builder::record_layer(const cache::KeyBuilder& kb,
                           const std::pair<oci::Descriptor, std::string>& made) {
    cache::ActionRecord rec;
    rec.key = kb.hex();
    rec.fields = kb.fields();
    rec.result = nlohmann::json::object();
    rec.result["layer"] = nlohmann::json::parse(oci::to_json(made.first).dump());
    rec.result["diff_id"] = made.second;
    rec.blobs.push_back(value_or_throw(made.first.sha256_hex()));
    actions_.put(rec);
}

// A layer found by content: recorded under this step's key too, no byte written.
std::pair<oci::Descriptor, std::string>
Builder::reuse_layer(const cache::ActionRecord& found, const cache::KeyBuilder& kb,
                     const std::string& step_id, const std::vector<cache::InputFile>& inputs) {
    std::pair<oci::Descriptor, std::string> made{
        value_or_throw(oci::descriptor_from_json(found.result.at("layer"))),
        found.result.at("diff_id").get<std::string>()};
    cache::ActionRecord rec;
    rec.key = kb.hex();
    rec.step_id = step_id;
    rec.fields = kb.fields();
    rec.inputs = inputs;
    rec.input_count = inputs.size();
    rec.result = found.result;
    rec.blobs = found.blobs;
    actions_.put(rec);
    stats_.hit("copy", static_cast<std::uint64_t>(made.first.size));
    return made;
}

std::pair<oci::Descriptor, std::string>
Builder::commit_layer(std::vector<layer::Entry> entries, const cache::KeyBuilder& kb,
                      const std::string& step_id, const std::vector<cache::InputFile>& inputs,
                      const std::string& kind, std::optional<std::int64_t> epoch) {
    auto info = write_layer_blob(std::move(entries), epoch);
    oci::Descriptor desc;
    desc.media_type = info.media_type;
    desc.digest = info.digest;
    desc.size = static_cast<std::int64_t>(info.size);
    cache::ActionRecord rec;
    rec.key = kb.hex();
    rec.step_id = step_id;
    rec.fields = kb.fields();
    rec.inputs = inputs;
    rec.input_count = rec.inputs.size();
    rec.result = nlohmann::json::object();
    rec.result["layer"] = nlohmann::json::parse(oci::to_json(desc).dump());
    rec.result["diff_id"] = info.diff_id;
    rec.blobs.push_back(info.digest.substr(info.digest.find(':') + 1));
    actions_.put(rec);
    stats_.miss(kind, info.size);
    return {desc, info.diff_id};
}

void Builder::add_layer(StageState& state, const oci::Descriptor& desc, const std::string& diff_id,
                        const std::string& created_by) {
    state.manifest.layers.push_back(desc);
    oci::History h;
    h.created = rfc3339(recipe_.epoch);
    h.created_by = "factory " + created_by;
    state.config.add_layer(diff_id, h);
}

const runtime::RuntimeChoice& Builder::runtime() {
    if (!runtime_) {
        auto choice = runtime::choose_runtime(options_.runtime);
        if (!choice) throw Error("no OCI runtime for RUN steps: " + choice.error());
        runtime_ = std::move(*choice);
        progress_.event("runtime", runtime_->description());
    }
    return *runtime_;
}

std::string describe_run(const recipe::RunStep& run) {
    std::string cmd = run.form == recipe::RunStep::Form::shell ? run.script : "";
    if (run.form == recipe::RunStep::Form::exec)
        for (const auto& a : run.exec)
            cmd += (cmd.empty() ? "" : " ") + a;
    for (auto& c : cmd)
        if (c == '\n' || c == '\t') c = ' ';
    std::string out = "run " + cmd;
    return out.size() > 100 ? out.substr(0, 97) + "..." : out;
}

// What a RUN step sees of the stage: the base's config with the stage's [config] env on top,
// so PATH and friends set there apply to the steps too. User and workdir come from the step, else
// the base: [config] user and workdir say how the finished image runs, and typically name a
// user or a directory that the steps create.
struct StageExec {
    std::vector<std::string> env;
    std::string user, workdir;
};

StageExec stage_exec(const recipe::Stage& stage, const oci::ImageConfig& config) {
    StageExec e;
    oci::ImageConfig c = config;
    if (stage.has_config)
        for (const auto& [k, v] : stage.config.env)
            c.set_env_var(k, v);
    e.env = c.env();
    e.user = config.user();
    e.workdir = config.working_dir();
    return e;
}

RunContext Builder::run_context(const recipe::Stage& stage, StageState& state,
                                const std::string& id) {
    auto exec = stage_exec(stage, state.config);
    RunContext ctx;
    ctx.store_root = store_.dir();
    ctx.blobs = &store_.blobs();
    ctx.layers = state.manifest.layers;
    ctx.diff_ids = state.config.diff_ids();
    ctx.env = exec.env;
    ctx.user = exec.user;
    ctx.workdir = exec.workdir;
    ctx.epoch = recipe_.epoch;
    ctx.secrets = &options_.secrets;
    ctx.on_output = [this, id](std::string_view line) { progress_.output(id, line); };
    return ctx;
}

// The key of a command: the command and everything that shapes its world, never a secret's
// value, a cache mount's content or the host's trust store (docs/cache.md).
void Builder::add_run_key(cache::KeyBuilder& kb, const RunContext& ctx, const recipe::RunStep& run,
                          const std::string& user, const std::string& workdir) {
    for (const auto& a : run.argv())
        kb.add("arg", a);
    for (const auto& e : run_environment(ctx, run))
        kb.add("env", e);
    kb.add("user", run.user.empty() ? user : run.user);
    kb.add("workdir", run.workdir.empty() ? workdir : run.workdir);
    kb.add("network", run.network ? "host" : "none");
    for (const auto& c : run.cache)
        kb.add("cache", (c.id.empty() ? c.target : c.id) + "=" + c.target);
    for (const auto& sm : run.secrets)
        kb.add("secret", sm.id + "=" + (sm.target.empty() ? "env:" + sm.env : sm.target));
}

void Builder::run_run(const recipe::Stage& stage, std::size_t index, StageState& state) {
    const auto& run = *stage.steps[index].run;
    std::string id =
        stage.name + " " + std::to_string(index + 1) + "/" + std::to_string(stage.steps.size());
    std::string what = describe_run(run);
    progress_.step_start(id, what);
    try {
        auto ctx = run_context(stage, state, id);
        cache::KeyBuilder kb;
        kb.add("parent", state.key);
        kb.add("kind", "run");
        kb.add("platform", platform_string(recipe_));
        kb.add("epoch", recipe_.epoch);
        kb.add("compression", recipe_.compression == recipe::Compression::zstd ? "zstd" : "gzip");
        add_run_key(kb, ctx, run, ctx.user, ctx.workdir);
        std::string key = kb.hex();
        std::string step_id = step_identity(recipe_.file, stage.name, index);
        bool parent_missed = state.missed;
        state.key = key;
        state.tree_known = false; // a RUN layer's entries are read back only if a copy needs them

        finish_step(state, {id, what, step_id, key, parent_missed, "run"}, kb, {}, {}, [&] {
            ctx.runtime = &runtime();
            auto outcome = execute_run(ctx, run, id);
            return commit_layer(std::move(outcome.entries), kb, step_id, {}, "run");
        });
    } catch (const Error& e) {
        progress_.step_failed(id, e.what());
        throw;
    }
}

SourceContext Builder::source_context(const std::string& id) {
    SourceContext ctx;
    ctx.store_root = store_.dir();
    ctx.offline = options_.offline;
    ctx.on_log = [this, id](std::string_view line) { progress_.output(id, line); };
    return ctx;
}

void Builder::run_git(const recipe::Stage& stage, std::size_t index, StageState& state) {
    const auto& git = *stage.steps[index].git;
    std::string id =
        stage.name + " " + std::to_string(index + 1) + "/" + std::to_string(stage.steps.size());
    std::string what = describe_git(git);
    progress_.step_start(id, what);
    try {
        auto ctx = source_context(id);
        auto resolved = resolve_git(ctx, git, id);
        cache::KeyBuilder kb;
        kb.add("parent", state.key);
        kb.add("kind", "git");
        kb.add("platform", platform_string(recipe_));
        kb.add("epoch", recipe_.epoch);
        kb.add("compression", recipe_.compression == recipe::Compression::zstd ? "zstd" : "gzip");
        add_git_key(kb, git, resolved);
        std::string key = kb.hex();
        std::string step_id = step_identity(recipe_.file, stage.name, index);
        bool parent_missed = state.missed;
        state.key = key;
        state.tree_known = false;
        finish_step(state, {id, what, step_id, key, parent_missed, "git"}, kb, {}, {}, [&] {
            auto out = execute_git(ctx, git, resolved, id);
            return commit_layer(std::move(out.entries), kb, step_id, {}, "git", out.epoch);
        });
    } catch (const Error& e) {
        progress_.step_failed(id, e.what());
        throw;
    }
}

void Builder::run_download(const recipe::Stage& stage, std::size_t index, StageState& state) {
    const auto& download = *stage.steps[index].download;
    std::string id =
        stage.name + " " + std::to_string(index + 1) + "/" + std::to_string(stage.steps.size());
    std::string what = describe_download(download);
    progress_.step_start(id, what);
    try {
        auto ctx = source_context(id);
        cache::KeyBuilder kb;
        kb.add("parent", state.key);
        kb.add("kind", "download");
        kb.add("platform", platform_string(recipe_));
        kb.add("epoch", recipe_.epoch);
        kb.add("compression", recipe_.compression == recipe::Compression::zstd ? "zstd" : "gzip");
        add_download_key(kb, download);
        std::string key = kb.hex();
        std::string step_id = step_identity(recipe_.file, stage.name, index);
        bool parent_missed = state.missed;
        state.key = key;
        state.tree_known = false;
        finish_step(state, {id, what, step_id, key, parent_missed, "download"}, kb, {}, {}, [&] {
            auto out = execute_download(ctx, download, id);
            return commit_layer(std::move(out.entries), kb, step_id, {}, "download");
        });
    } catch (const Error& e) {
        progress_.step_failed(id, e.what());
        throw;
    }
}

// deps: the lockfiles copied into dest, then the command run there, in one layer. The key
// holds the lockfiles' content and the command, not the rest of the source, so editing the
// source never reinstalls and changing a lockfile does.
void Builder::run_deps(const recipe::Stage& stage, std::size_t index, StageState& state) {
    const auto& deps = *stage.steps[index].deps;
    std::string id =
        stage.name + " " + std::to_string(index + 1) + "/" + std::to_string(stage.steps.size());
    std::string what = "deps " + describe_run(deps.run).substr(4) + " (" +
                       std::to_string(deps.lockfiles.size()) + " lockfiles)";
    progress_.step_start(id, what);
    try {
        ensure_tree(stage, state);
        recipe::Step copy;
        copy.kind = recipe::StepKind::copy;
        recipe::CopyItem item;
        item.src = deps.lockfiles;
        item.dest = deps.dest.ends_with('/') ? deps.dest : deps.dest + "/";
        item.where = deps.where;
        copy.copy.push_back(item);
        copy.where = deps.where;
        CopyContext cc;
        cc.context = recipe_.context;
        cc.ignore = ignore_.empty() ? nullptr : &ignore_;
        cc.named = &recipe_.contexts;
        cc.lower = &state.tree;
        std::unordered_map<std::string, struct stat> stats;
        cc.stats = &stats;
        auto lock_entries = plan_copy(copy, cc);
        auto inputs = hash_inputs(lock_entries, stat_cache_, options_.threads, &stats);

        auto ctx = run_context(stage, state, id);
        cache::KeyBuilder kb;
        kb.add("parent", state.key);
        kb.add("kind", "deps");
        kb.add("platform", platform_string(recipe_));
        kb.add("epoch", recipe_.epoch);
        kb.add("compression", recipe_.compression == recipe::Compression::zstd ? "zstd" : "gzip");
        kb.add("copy", describe_item(item));
        kb.add("inputs", cache::merkle_digest(inputs));
        add_run_key(kb, ctx, deps.run, ctx.user, ctx.workdir);
        std::string key = kb.hex();
        std::string step_id = step_identity(recipe_.file, stage.name, index);
        bool parent_missed = state.missed;
        state.key = key;
        state.tree_known = false;
        std::map<std::string, std::string> sources;
        for (const auto& e : lock_entries)
            if (!e.source.empty())
                sources["/" + e.path] =
                    fs::path(e.source).lexically_proximate(recipe_.context).string();
        finish_step(state, {id, what, step_id, key, parent_missed, "deps"}, kb, inputs, sources,
                    [&] {
                        // The lockfiles as a layer below the run, then in the step's layer.
                        auto lock_layer = write_layer_blob(lock_entries);
                        oci::Descriptor desc;
                        desc.media_type = lock_layer.media_type;
                        desc.digest = lock_layer.digest;
                        desc.size = static_cast<std::int64_t>(lock_layer.size);
                        ctx.layers.push_back(desc);
                        ctx.diff_ids.push_back(lock_layer.diff_id);
                        ctx.runtime = &runtime();
                        auto outcome = execute_run(ctx, deps.run, id);
                        std::map<std::string, layer::Entry> merged;
                        for (auto& e : lock_entries)
                            merged[e.path] = std::move(e);
                        for (auto& e : outcome.entries)
                            merged[e.path] = std::move(e); // what the command changed wins
                        std::vector<layer::Entry> entries;
                        for (auto& [p, e] : merged)
                            entries.push_back(std::move(e));
                        return commit_layer(std::move(entries), kb, step_id, inputs, "deps");
                    });
    } catch (const Error& e) {
        progress_.step_failed(id, e.what());
        throw;
    }
}

std::string debian_arch(const recipe::Recipe& r) {
    if (r.architecture == "arm" && r.variant == "v7") return "armhf";
    if (r.architecture == "arm") return "armel";
    if (r.architecture == "386") return "i386";
    if (r.architecture == "ppc64le") return "ppc64el";
    return r.architecture;
}

void Builder::import_debian(const recipe::Stage& stage, StageState& state) {
    const auto& deb = stage.base.debian;
    std::string id = stage.name + " base";
    sources::DebianSpec spec;
    spec.suite = deb.suite;
    spec.variant = deb.variant;
    spec.include = deb.include;
    spec.mirror = deb.mirror;
    spec.mirror = sources::resolve_mirror(spec);
    spec.components = deb.components;
    spec.architecture = deb.architecture.empty() ? debian_arch(recipe_) : deb.architecture;
    std::string what =
        "debian " + spec.suite + " " + spec.variant +
        (spec.include.empty() ? "" : " +" + std::to_string(spec.include.size()) + " packages");
    progress_.step_start(id, what);
    try {
        cache::KeyBuilder kb;
        kb.add("kind", "debian");
        kb.add("suite", spec.suite);
        kb.add("variant", spec.variant);
        for (const auto& p : spec.include)
            kb.add("include", p);
        kb.add("mirror", spec.mirror);
        for (const auto& c : spec.components)
            kb.add("component", c);
        kb.add("architecture", spec.architecture);
        kb.add("platform", platform_string(recipe_));
        kb.add("epoch", recipe_.epoch);
        kb.add("compression", recipe_.compression == recipe::Compression::zstd ? "zstd" : "gzip");
        std::string key = kb.hex();
        std::string step_id = step_identity(recipe_.file, stage.name, std::size_t(-1));
        state.config = oci::ImageConfig(recipe_platform(recipe_));
        state.config.set_env_var("PATH",
                                 "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        state.tree_known = false;

        std::optional<cache::KeyLock> lock;
        auto record = lookup_or_lock(key, lock);
        oci::Descriptor desc;
        std::string diff_id;
        if (record) {
            desc = value_or_throw(oci::descriptor_from_json(record->result.at("layer")));
            diff_id = record->result.at("diff_id").get<std::string>();
            stats_.hit("debian", static_cast<std::uint64_t>(desc.size));
        } else if (mode_ == Mode::explain) {
            reports_.push_back(
                {id, what, false,
                 explain_miss(kb.fields(), {}, actions_.last_for_step(step_id), false)});
            state.key = key;
            state.missed = true;
            progress_.step_done(id, "would rebuild");
            return;
        } else {
            TempDir work(store_.dir() / "tmp", "debian-");
            auto rootfs = sources::bootstrap_debian(
                spec, work.path(), recipe_.epoch,
                [&](std::string_view line) { progress_.output(id, line); });
            if (!rootfs) throw Error(stage.base.where.str() + ": debian base: " + rootfs.error());
            auto entries = sources::debian_entries(rootfs->dir);
            if (!entries) throw Error(stage.base.where.str() + ": debian base: " + entries.error());
            std::tie(desc, diff_id) = commit_layer(std::move(*entries), kb, step_id, {}, "debian");
        }
        if (mode_ == Mode::build) remember_step(step_id, key);
        state.key = key;
        state.missed = !record;
        add_layer(state, desc, diff_id, what);
        progress_.step_done(
            id, short_digest(desc.digest) + " " + human_size(static_cast<std::uint64_t>(desc.size)),
            record.has_value());
    } catch (const Error& e) {
        progress_.step_failed(id, e.what());
        throw;
    }
}

void Builder::apply_config(const recipe::Stage& stage, StageState& state) {
    auto& c = state.config;
    c.set_created(rfc3339(recipe_.epoch));
    if (!stage.has_config) return;
    const auto& rc = stage.config;
    for (const auto& [k, v] : rc.env)
        c.set_env_var(k, v);
    // Dockerfile semantics: a new entrypoint drops the base's cmd unless cmd is given too.
    if (rc.entrypoint) {
        c.set_entrypoint(*rc.entrypoint);
        if (!rc.cmd) c.set_cmd({});
    }
    if (rc.cmd) c.set_cmd(*rc.cmd);
    if (!rc.workdir.empty()) c.set_working_dir(rc.workdir);
    if (!rc.user.empty()) c.set_user(rc.user);
    for (const auto& [k, v] : rc.labels)
        c.set_label(k, v);
    for (const auto& p : rc.exposed_ports)
        c.add_exposed_port(p);
    for (const auto& v : rc.volumes)
        c.add_volume(v);
    if (!rc.stop_signal.empty()) c.set_stop_signal(rc.stop_signal);
}

oci::Descriptor Builder::publish(StageState& state) {
    auto config_bytes = state.config.serialize();
    state.manifest.config = store_.put_blob(std::string(oci::media_type::config), config_bytes);
    state.manifest.annotations = recipe_.annotations;
    auto manifest_bytes = oci::serialize(state.manifest);
    return store_.put_blob(std::string(oci::media_type::manifest), manifest_bytes);
}

void Builder::write_outputs(const oci::Descriptor& manifest) {
    for (const auto& spec : options_.outputs) {
        auto target = exporter::parse_target(spec);
        if (!target) throw Error("-o " + spec + ": " + target.error(), ExitCode::usage);
        progress_.event("export", exporter::to_string(*target));
        exporter::export_image(store_, manifest, *target,
                               recipe_.name + ":" + recipe_.tags.front());
    }
}

void Builder::run_stages() {
    for (const auto& stage : recipe_.stages) {
        StageState state = start_stage(stage);
        for (std::size_t i = 0; i < stage.steps.size(); ++i) {
            switch (stage.steps[i].kind) {
            case recipe::StepKind::run:
                run_run(stage, i, state);
                break;
            case recipe::StepKind::git:
                run_git(stage, i, state);
                break;
            case recipe::StepKind::download:
                run_download(stage, i, state);
                break;
            case recipe::StepKind::deps:
                run_deps(stage, i, state);
                break;
            case recipe::StepKind::copy:
                run_copy(stage, i, state);
                break;
            }
        }
        apply_config(stage, state);
        done_[stage.name] = std::move(state);
    }
}

BuildResult Builder::run() {
    // Outputs are checked before any work, so a typo fails fast.
    for (const auto& spec : options_.outputs)
        if (auto t = exporter::parse_target(spec); !t)
            throw Error("-o " + spec + ": " + t.error(), ExitCode::usage);
    run_stages();
    StageState& out = done_.at(recipe_.output_stage);
    oci::Descriptor manifest = publish(out);
    for (const auto& tag : recipe_.tags) {
        auto ref = recipe_.name + ":" + tag;
        auto current = store_.resolve(ref);
        if (!current || current->digest != manifest.digest) store_.set_ref(ref, manifest);
    }
    write_outputs(manifest);
    cache::add_stats(store_.dir(), stats_);
    BuildResult result;
    result.name = recipe_.name;
    result.tags = recipe_.tags;
    result.manifest_digest = manifest.digest;
    result.manifest_size = static_cast<std::uint64_t>(manifest.size);
    progress_.event("done", recipe_.name + ":" + recipe_.tags.front() + " " + manifest.digest);
    return result;
}

std::vector<StepReport> Builder::explain() {
    run_stages();
    return std::move(reports_);
}

} // namespace

std::optional<std::int64_t> source_date_epoch_from_env() {
    const char* v = std::getenv("SOURCE_DATE_EPOCH");
    if (!v || !*v) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 0)
        throw usage_error(std::string("SOURCE_DATE_EPOCH=") + v +
                          ": expected a non-negative integer (seconds since 1970)");
    return n;
}

std::vector<std::string> store_root_blobs(const fs::path& store_root) {
    auto store = oci::Layout::open(store_root);
    std::vector<std::string> out;
    for (const auto& [name, desc] : store.refs()) {
        auto closure = store.closure(desc);
        if (!closure) throw Error("ref " + name + ": " + closure.error());
        for (const auto& d : *closure)
            if (auto hex = d.sha256_hex()) out.push_back(*hex);
    }
    return out;
}

namespace {

recipe::Recipe load_recipe(const fs::path& recipe_path, const BuildOptions& options) {
    recipe::LoadOptions lo;
    lo.args = options.args;
    lo.source_date_epoch = options.source_date_epoch;
    return recipe::load(recipe_path, lo);
}

// Automatic pruning once the build has let go of the store (FACTORY_CACHE_MAX_SIZE).
void auto_prune(const fs::path& root, Progress& progress) {
    auto limit = cache::max_size_from_env();
    if (!limit) return;
    auto store = oci::Layout::open(root, {.tmp_dir = root / "tmp"});
    auto report = cache::maybe_auto_prune(root, store.blobs(), *limit,
                                          [&] { return store_root_blobs(root); });
    if (report && report->bytes_freed > 0)
        progress.event("prune", "freed " + human_size(report->bytes_freed) + " (store over " +
                                    human_size(*limit) + ")");
}

} // namespace

BuildResult build_recipe(const fs::path& recipe_path, const BuildOptions& options,
                         Progress& progress) {
    recipe::Recipe recipe = load_recipe(recipe_path, options);
    BuildResult result;
    {
        Builder builder(recipe, options, progress, Mode::build);
        result = builder.run();
    }
    auto_prune(options.store_root, progress);
    return result;
}

std::vector<StepReport> explain_recipe(const fs::path& recipe_path, const BuildOptions& options,
                                       Progress& progress) {
    recipe::Recipe recipe = load_recipe(recipe_path, options);
    Builder builder(recipe, options, progress, Mode::explain);
    return builder.explain();
}

bool runs_as_root(const fs::path& recipe_path, const BuildOptions& options) {
    auto r = load_recipe(recipe_path, options);
    for (const auto& stage : r.stages) {
        if (stage.base.kind == recipe::Base::Kind::debian) return true;
        for (const auto& step : stage.steps)
            if (step.kind == recipe::StepKind::run) return true;
    }
    return false;
}

} // namespace factory::builder
