#include "factory/builder/execute.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "cache/action_store.hpp"
#include "cache/block_map.hpp"
#include "cache/listings.hpp"
#include "cache/lock.hpp"
#include "cache/stat_cache.hpp"
#include "cache/stats.hpp"
#include "factory/builder/copy.hpp"
#include "factory/builder/lock.hpp"
#include "factory/builder/remote_cache.hpp"
#include "factory/builder/step_cache.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/export/export.hpp"
#include "factory/export/target.hpp"
#include "factory/layer/block_source.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::builder {

// ---- the session ----------------------------------------------------------------------------

BuildSession::BuildSession(unsigned jobs)
    : jobs_(jobs ? jobs : std::max(1u, std::thread::hardware_concurrency())) {}

void BuildSession::acquire() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return running_ < jobs_; });
    ++running_;
}

void BuildSession::release() {
    {
        std::lock_guard lock(mutex_);
        --running_;
    }
    cv_.notify_one();
}

void BuildSession::building(const std::string& key, const std::string& who) {
    std::lock_guard lock(mutex_);
    building_[key] = who;
}

void BuildSession::built(const std::string& key) {
    std::lock_guard lock(mutex_);
    building_.erase(key);
}

std::string BuildSession::builder_of(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = building_.find(key);
    return it == building_.end() ? "" : it->second;
}

bool BuildSession::remote_usable() {
    std::lock_guard lock(mutex_);
    return remote && !remote_failed_;
}

void BuildSession::remote_failed(const std::string& why) {
    throw_if_interrupted(); // a transfer stopped by a signal is no registry failure to build past
    std::lock_guard lock(mutex_);
    if (remote_failed_) return;
    remote_failed_ = true;
    warn("--cache-from " + why + "; building the rest without it");
}

void BuildSession::resolved(const std::string& key, bool output_stage) {
    std::lock_guard lock(mutex_);
    resolved_.emplace_back(key, output_stage);
}

std::vector<std::pair<std::string, bool>> BuildSession::resolved_keys() {
    std::lock_guard lock(mutex_);
    return resolved_;
}

namespace {

namespace fs = std::filesystem;

// A stage given up because another one failed: not an error of its own.
struct Cancelled {};

class Slot {
  public:
    explicit Slot(BuildSession& s) : session_(s) { session_.acquire(); }
    ~Slot() { session_.release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

  private:
    BuildSession& session_;
};

class RecipeRun {
  public:
    RecipeRun(const recipe::Recipe& recipe, const BuildOptions& options, Progress& progress,
              BuildSession& session, ExecMode mode, std::string label)
        : recipe_(recipe), options_(options), progress_(progress), session_(session), mode_(mode),
          label_(std::move(label)), store_(open_store(options.store_root)),
          lock_(cache::StoreLock::build(options.store_root, store_wait())),
          scratch_(store_.dir() / "tmp", "build-"),
          stat_cache_(cache::StatCache::load(options.store_root / "statcache" / "v1")),
          actions_(options.store_root, store_.blobs()) {
        if (options.locked) pins_ = load_lock_for(recipe);
        load_ignore_rules();
        find_stage_sources();
        find_needed_stages();
    }
    ~RecipeRun() {
        try {
            stat_cache_.save(); // what was hashed stays useful even if the build failed
        } catch (const std::exception&) {
        }
    }

    void run_stages(Plan& plan);
    BuildResult publish_output();

  private:
    cache::LockWait store_wait() {
        cache::LockWait w;
        w.timeout = options_.lock_timeout;
        w.on_wait = [this] { progress_.event("wait", "the store is being pruned; waiting"); };
        return w;
    }

    static oci::Layout open_store(const fs::path& root) {
        std::error_code ec;
        fs::create_directories(root / "tmp", ec);
        if (ec) throw Error("cannot create the store at " + root.string() + ": " + ec.message());
        return oci::Layout::create(root, {.tmp_dir = root / "tmp"});
    }

    bool planning() const noexcept { return mode_ == ExecMode::plan; }
    std::string progress_id(const StepRef& s) const { return label_ + s.id(); }
    void load_ignore_rules();
    void find_stage_sources();
    void find_needed_stages();
    std::optional<cache::ActionRecord> remote_hit(const std::string& key, const StepRef& ref,
                                                  std::uint64_t& downloaded);
    void ensure_local(const StageState& state);
    void fetch_pending(const std::vector<std::string>& digests);
    LayerListing read_listing(const std::string& digest);
    std::optional<std::string> shared_listing(const std::string& layer);
    Result<void> check_layer(const std::string& digest, const std::optional<std::string>& shared);
    void restore_mounts(const StepRef& ref);
    void run_stage_task(Plan& plan, std::size_t index);
    StageState run_stage(const recipe::Stage& stage, PlannedStage& planned);
    StageState start_stage(const recipe::Stage& stage);
    void run_step(const StepRef& ref, PlannedStep& planned, StageState& state);
    std::optional<cache::ActionRecord> lookup_or_lock(const std::string& key, const std::string& id,
                                                      std::optional<cache::KeyLock>& lock);
    void put_record(const cache::KeyBuilder& kb, const StepKey* key, const nlohmann::json& result,
                    const std::vector<std::string>& blobs);
    void remember_step(const std::string& step_id, const std::string& key);
    void ensure_tree(const recipe::Stage& stage, StageState& state);
    layer::LayerInfo write_layer_blob(std::vector<layer::Entry> entries,
                                      std::optional<std::int64_t> epoch = std::nullopt,
                                      const std::string& id = {},
                                      const layer::BlockSource* reuse = nullptr,
                                      layer::ContentSource* content = nullptr);
    std::shared_ptr<layer::BlockSource> blocks_of_last_build(const std::string& step_id);
    layer::Compression layer_compression() const {
        return recipe_.compression == recipe::Compression::zstd ? layer::Compression::zstd
                                                                : layer::Compression::gzip;
    }
    const runtime::RuntimeChoice& runtime();
    StepEnv env_for(const std::string& progress_id);
    const StageState* finished(const std::string& name);
    void apply_config(const recipe::Stage& stage, StageState& state);
    void write_outputs(const oci::Descriptor& manifest);

    const recipe::Recipe& recipe_;
    const BuildOptions& options_;
    Progress& progress_;
    BuildSession& session_;
    ExecMode mode_;
    std::string label_;
    oci::Layout store_;
    cache::StoreLock lock_; // shared: no prune while this build runs
    TempDir scratch_;       // extracted layer content for copies from stages
    cache::StatCache stat_cache_;
    cache::ActionStore actions_;
    IgnoreRules ignore_;
    std::set<std::string> copied_from_; // stages other stages copy files from
    std::atomic<std::size_t> extracted_dirs_ = 0;
    // Stages whose layers a build reads or outputs: a remote hit there is downloaded at once.
    std::set<std::string> needed_;

    std::mutex mutex_; // guards what follows
    std::condition_variable stage_done_;
    cache::Stats stats_;
    std::map<std::string, StageState> done_; // finished stages: never changed once here
    std::set<std::string> failed_;           // stages that failed or were given up
    std::exception_ptr error_;               // the first failure
    std::optional<runtime::RuntimeChoice> runtime_;
    std::optional<recipe::Lockfile> pins_; // --locked
    // Remote hits not downloaded yet (their stage's layers were not needed): blob digest → the
    // source and descriptor, and the records to publish once their blobs are here.
    std::map<std::string, std::pair<std::size_t, oci::Descriptor>> pending_blobs_;
    std::vector<cache::ActionRecord> pending_records_;
};

void RecipeRun::load_ignore_rules() {
    ignore_ = recipe_ignore_rules(recipe_);
}

void RecipeRun::find_stage_sources() {
    for (const auto& stage : recipe_.stages)
        for (const auto& step : stage.steps)
            for (const auto& item : step.copy)
                if (!item.from_stage.empty()) copied_from_.insert(item.from_stage);
    // A stage used as a base by a copied-from stage needs its content too.
    for (auto it = recipe_.stages.rbegin(); it != recipe_.stages.rend(); ++it)
        if (copied_from_.count(it->name) && it->base.kind == recipe::Base::Kind::stage)
            copied_from_.insert(it->base.stage);
}

// The output stage and the stages it starts from: their layers are the image, whatever the
// cache says. A stage others copy from is not among them: its files are known from the
// listings of its layers, and a layer is downloaded when a copy that missed takes a file out.
void RecipeRun::find_needed_stages() {
    needed_.insert(recipe_.output_stage);
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& stage : recipe_.stages)
            if (needed_.count(stage.name) && stage.base.kind == recipe::Base::Kind::stage)
                grew |= needed_.insert(stage.base.stage).second;
    }
}

const StageState* RecipeRun::finished(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto it = done_.find(name);
    return it == done_.end() ? nullptr : &it->second;
}

StepEnv RecipeRun::env_for(const std::string& id) {
    StepEnv env;
    env.recipe = &recipe_;
    env.options = &options_;
    env.store = &store_;
    env.stat_cache = &stat_cache_;
    env.actions = &actions_;
    env.ignore = ignore_.empty() ? nullptr : &ignore_;
    env.planning = planning();
    env.lock = pins_ ? &*pins_ : nullptr;
    env.stage = [this](const std::string& name) { return finished(name); };
    env.ensure_tree = [this](const recipe::Stage& st, StageState& s) { ensure_tree(st, s); };
    env.runtime = [this]() -> const runtime::RuntimeChoice& { return runtime(); };
    env.write_layer = [this](std::vector<layer::Entry> e) {
        return write_layer_blob(std::move(e));
    };
    env.write_layer_at = [this](std::vector<layer::Entry> e, std::optional<std::int64_t> epoch,
                                layer::ContentSource* content) {
        return write_layer_blob(std::move(e), epoch, {}, nullptr, content);
    };
    env.output = [this, id](std::string_view line) { progress_.output(id, line); };
    env.progress = &progress_;
    env.put_record = [this](const cache::KeyBuilder& kb, const nlohmann::json& result,
                            const std::vector<std::string>& blobs) {
        put_record(kb, nullptr, result, blobs);
    };
    return env;
}

// ---- stages ---------------------------------------------------------------------------------

// Every stage has a task that waits for the stages it needs, then for a slot of the session.
// A failure stops the stages not started yet; the running ones stop after their current step.
void RecipeRun::run_stages(Plan& plan) {
    if (planning()) {
        for (std::size_t i = 0; i < plan.stages.size(); ++i)
            run_stage_task(plan, i);
    } else {
        std::vector<std::thread> tasks;
        for (std::size_t i = 0; i < plan.stages.size(); ++i)
            tasks.emplace_back([this, &plan, i] { run_stage_task(plan, i); });
        for (auto& t : tasks)
            t.join();
    }
    if (error_) std::rethrow_exception(error_);
}

void RecipeRun::run_stage_task(Plan& plan, std::size_t index) {
    PlannedStage& planned = plan.stages[index];
    const recipe::Stage& stage = recipe_.stages[index];
    {
        std::unique_lock lock(mutex_);
        stage_done_.wait(lock, [&] {
            if (error_) return true;
            for (const auto& need : planned.needs)
                if (!done_.count(need)) return false;
            return true;
        });
        if (error_) {
            failed_.insert(stage.name);
            return;
        }
    }
    try {
        Slot slot(session_);
        StageState state = run_stage(stage, planned);
        std::lock_guard lock(mutex_);
        done_.emplace(stage.name, std::move(state));
    } catch (const Cancelled&) {
        std::lock_guard lock(mutex_);
        failed_.insert(stage.name);
    } catch (...) {
        std::lock_guard lock(mutex_);
        failed_.insert(stage.name);
        if (!error_) error_ = std::current_exception();
    }
    stage_done_.notify_all();
}

StageState RecipeRun::run_stage(const recipe::Stage& stage, PlannedStage& planned) {
    StageState state = start_stage(stage);
    std::size_t p = 0;
    if (planned.has_base_step) run_step({&stage, std::nullopt}, planned.steps[p++], state);
    for (std::size_t i = 0; i < stage.steps.size(); ++i, ++p) {
        {
            std::lock_guard lock(mutex_);
            if (error_) throw Cancelled{};
        }
        run_step({&stage, i}, planned.steps[p], state);
    }
    apply_config(stage, state);
    // Whoever copies from this stage sees its whole file system, whatever its steps were:
    // a RUN layer, or a base nobody read yet, is read back now (content included).
    if (copied_from_.count(stage.name) && !state.incomplete) ensure_tree(stage, state);
    return state;
}

StageState RecipeRun::start_stage(const recipe::Stage& stage) {
    StageState state;
    switch (stage.base.kind) {
    case recipe::Base::Kind::scratch:
        state.config = oci::ImageConfig(recipe_platform(recipe_));
        state.key = "scratch";
        break;
    case recipe::Base::Kind::stage: {
        const StageState* base = finished(stage.base.stage);
        if (!base)
            throw Error(stage.base.where.str() + ": stage '" + stage.base.stage +
                            "' is not built before '" + stage.name + "'",
                        ExitCode::usage);
        state = *base;
        break;
    }
    default:
        break; // a base step (step_kind.hpp) makes it
    }
    return state;
}

// Reads the stage's layers into its tree: metadata always (to resolve destinations through
// symlinks such as /bin → usr/bin), content only for stages others copy from. A layer's
// listing stands for reading it (docs/cache.md "Listings"): the store's, else a --cache-from
// cache's, so a layer a remote hit left in the registry is not downloaded to know its files.
// Content is still read from the blob, checked first (check_layer): when a copy takes a file
// out of it, not on every build. A tree that holds the first layers already (a step added one
// since) takes only the ones after.
void RecipeRun::ensure_tree(const recipe::Stage& stage, StageState& state) {
    if (state.tree_known) return;
    const bool with_content = copied_from_.count(stage.name) != 0;
    fs::path content;
    if (with_content) {
        content = scratch_.path() / ("layers-" + std::to_string(extracted_dirs_++));
        fs::create_directories(content);
    }
    const auto& layers = state.manifest.layers;
    if (state.tree_layers > layers.size() || state.tree_content != with_content)
        state.tree_layers = 0;
    if (state.tree_layers == 0) state.tree = Tree{};
    cache::Listings listings(store_.dir());
    for (std::size_t i = state.tree_layers; i < layers.size(); ++i) {
        const auto& layer = layers[i];
        auto hex = layer.sha256_hex();
        if (!hex) throw Error("layer " + layer.digest + ": " + hex.error());
        auto blob = store_.blobs().path(*hex);
        std::optional<LayerListing> listing;
        if (auto body = listings.read(*hex))
            if (auto parsed = parse_listing(*body, {})) listing = std::move(*parsed);
        std::optional<std::string> shared;
        if (!listing)
            if ((shared = shared_listing(layer.digest)))
                if (auto parsed = parse_listing(*shared, {})) listing = std::move(*parsed);
        std::function<Result<void>()> check;
        if (!listing) {
            fetch_pending({layer.digest});
            listing = read_listing(layer.digest);
            try {
                listings.put(*hex, serialize_listing(*listing, {}));
            } catch (const Error&) {
                // Only a saving lost: the next build reads the layer again.
            }
        } else if (!content.empty()) {
            check = [this, digest = layer.digest, shared = std::move(shared)] {
                return check_layer(digest, shared);
            };
        }
        state.tree.apply_listing(std::move(*listing), blob, content, {}, std::move(check));
    }
    state.tree_layers = layers.size();
    state.tree_content = with_content;
    state.tree_known = true;
}

// Reads a layer blob of the store for its listing, checking on the way that it hashes to its
// digest. A blob that fails to read is re-hashed, so that a damaged one is called that.
LayerListing RecipeRun::read_listing(const std::string& digest) {
    const std::string hex = digest.substr(digest.find(':') + 1);
    try {
        return Tree::list_layer_blob(store_.blobs().path(hex), {}, digest);
    } catch (const Error&) {
        if (auto ok = store_.blobs().verify(hex); !ok) throw Error(ok.error());
        throw;
    }
}

// The listing of `layer` in a --cache-from cache, when there is one and the store has none.
std::optional<std::string> RecipeRun::shared_listing(const std::string& layer) {
    if (planning() || !session_.remote_usable()) return std::nullopt;
    try {
        std::uint64_t bytes = 0;
        auto body = session_.remote->listing(layer, store_.blobs(), bytes);
        std::lock_guard lock(mutex_);
        stats_.total.bytes_downloaded += bytes;
        return body;
    } catch (const std::exception& e) {
        session_.remote_failed(e.what());
        return std::nullopt;
    }
}

// Before the first file is taken out of a layer: the blob is here (downloaded now when a
// remote hit left it in the registry) and hashes to its digest, and a listing that came from
// the registry is the one reading the layer gives — else the keys this build made from it are
// not to be trusted, and the build stops. A listing checked so is kept in the store.
Result<void> RecipeRun::check_layer(const std::string& digest,
                                    const std::optional<std::string>& shared) {
    const std::string hex = digest.substr(digest.find(':') + 1);
    try {
        fetch_pending({digest});
        if (!shared) return store_.blobs().verify(hex);
        auto read = serialize_listing(read_listing(digest), {});
        if (read != *shared)
            return Unexpected("--cache-from: the listing of layer " + digest +
                              " in the registry cache does not match the layer (a damaged or "
                              "hostile cache), so keys made from it can't be trusted; build "
                              "without that --cache-from");
        cache::Listings(store_.dir()).put(hex, read);
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
    return {};
}

// ---- steps ----------------------------------------------------------------------------------

// The one way every step goes: key it; reuse the recorded result on a hit; on a miss say why
// when asked (or, planning, stop there), else make it and record it; apply it to the stage.
void RecipeRun::run_step(const StepRef& ref, PlannedStep& planned, StageState& state) {
    throw_if_interrupted();
    const StepKind& kind = kind_of(ref);
    std::string id = progress_id(ref);
    progress_.step_start(id, planned.what);
    try {
        StepEnv env = env_for(id);
        // Planning after a step whose key is unknown: so is this one's (its parent).
        StepKey key;
        if (planning() && state.incomplete && state.key.empty()) {
            key.known = false;
            key.unknown_because = "an earlier step's key is known only once it is built";
        } else {
            key = kind.key(ref, env, state);
        }
        if (!key.known) { // planning only: after a step that would rebuild
            planned.reasons = {key.unknown_because};
            kind.apply(ref, env, state, key, nullptr);
            state.missed = state.incomplete = true;
            state.key.clear();
            progress_.step_done(id, "would rebuild");
            return;
        }
        std::string hex = key.fields.hex();
        planned.key = hex;
        planned.fields = key.fields.fields();
        bool parent_missed = state.missed;
        state.key = hex;

        std::optional<cache::KeyLock> lock;
        auto record = lookup_or_lock(hex, id, lock);
        std::uint64_t downloaded = 0;
        bool remote = false;
        if (!record && !planning()) {
            record = remote_hit(hex, ref, downloaded);
            remote = record.has_value();
        }
        planned.cached = record.has_value();
        if (!record && (planning() || options_.explain)) {
            auto last = key.step_id.empty() ? std::nullopt : actions_.last_for_step(key.step_id);
            planned.reasons =
                explain_miss(key.fields.fields(), key.inputs, last, parent_missed, key.sources);
            if (!planning())
                for (const auto& r : planned.reasons)
                    progress_.event("why", id + " (" + planned.what + "): " + r);
        }
        if (!record && planning() && !kind.made_while_planning()) {
            kind.apply(ref, env, state, key, nullptr);
            state.missed = state.incomplete = true;
            progress_.step_done(id, "would rebuild");
            return;
        }
        nlohmann::json result;
        bool hit = record.has_value();
        std::uint64_t bytes = 0;
        if (record) {
            result = std::move(record->result);
            bytes = kind.result_bytes(result);
        } else {
            session_.building(hex, id);
            StepMade made;
            auto reuse = blocks_of_last_build(key.step_id);
            env.write_layer = [this, id, reuse](std::vector<layer::Entry> e) {
                return write_layer_blob(std::move(e), std::nullopt, id, reuse.get());
            };
            env.write_layer_at = [this, id, reuse](std::vector<layer::Entry> e,
                                                   std::optional<std::int64_t> t,
                                                   layer::ContentSource* content) {
                return write_layer_blob(std::move(e), t, id, reuse.get(), content);
            };
            try {
                ensure_local(state);
                restore_mounts(ref);
                made = kind.make(ref, env, state, key);
            } catch (...) {
                session_.built(hex);
                throw;
            }
            session_.built(hex);
            put_record(key.fields, &key, made.result, made.blobs);
            result = std::move(made.result);
            bytes = made.bytes;
            hit = made.reused;
        }
        {
            std::lock_guard l(mutex_);
            if (hit)
                stats_.hit(std::string(kind.name()), bytes);
            else
                stats_.miss(std::string(kind.name()), bytes);
            if (remote) stats_.remote_hit(std::string(kind.name()), downloaded);
        }
        if (!planning()) session_.resolved(hex, ref.stage->name == recipe_.output_stage);
        if (!planning() && !key.step_id.empty()) remember_step(key.step_id, hex);
        state.missed = !record;
        kind.apply(ref, env, state, key, &result);
        progress_.step_done(id, kind.summary(result) + (remote ? " (registry cache)" : ""),
                            record.has_value());
    } catch (const Error& e) {
        progress_.step_failed(id, e.what());
        throw;
    }
}

// A hit returns the record. On a miss, takes the key's lock (waiting while another build makes
// the same step, in this process or another) and looks again: that build's result is then
// reused. Planning never waits.
std::optional<cache::ActionRecord> RecipeRun::lookup_or_lock(const std::string& key,
                                                             const std::string& id,
                                                             std::optional<cache::KeyLock>& lock) {
    if (auto hit = actions_.lookup(key)) return hit;
    if (planning()) return std::nullopt;
    cache::LockWait wait;
    wait.on_wait = [&] {
        auto who = session_.builder_of(key);
        progress_.event("wait", id + ": waiting for " +
                                    (who.empty() ? "another build of the same step"
                                                 : "[" + who + "], the same step"));
    };
    lock.emplace(cache::KeyLock::acquire(store_.dir(), key, wait));
    return actions_.lookup(key);
}

// A local miss found in a --cache-from cache. A stage whose layers are the image gets the
// record's blobs now (a failed download: the step is built here, after one warning); another
// keeps them remote until a later step needs them (ensure_local, or a copy taking a file out:
// check_layer), and for good when none does.
std::optional<cache::ActionRecord> RecipeRun::remote_hit(const std::string& key, const StepRef& ref,
                                                         std::uint64_t& downloaded) {
    if (!session_.remote_usable()) return std::nullopt;
    auto found = session_.remote->find(key);
    if (!found) return std::nullopt;
    auto record = found->entry.record;
    // A base of manifest and config (a registry image) is read when it is applied.
    const bool manifest_base =
        ref.is_base() && !(record.result.is_object() && record.result.contains("layer"));
    if (manifest_base || needed_.count(ref.stage->name)) {
        try {
            downloaded = session_.remote->fetch(found->source, found->entry.blobs, store_.blobs(),
                                                &progress_);
            actions_.put(record);
        } catch (const std::exception& e) {
            session_.remote_failed(session_.remote->ref(found->source).text + ": " + e.what());
            return std::nullopt;
        }
        return record;
    }
    std::lock_guard lock(mutex_);
    for (const auto& d : found->entry.blobs)
        if (!store_.blobs().has(*d.sha256_hex())) pending_blobs_[d.digest] = {found->source, d};
    pending_records_.push_back(record);
    return record;
}

// Downloads the stage's layers that are still remote, then publishes the records that were
// waiting for them. Throws Error (the build needs them now; it can't go back to a miss).
void RecipeRun::ensure_local(const StageState& state) {
    std::vector<std::string> digests;
    for (const auto& layer : state.manifest.layers)
        digests.push_back(layer.digest);
    fetch_pending(digests);
}

// The blobs among `digests` that a remote hit left in the registry, downloaded; then the
// records whose blobs are all here now are published. Throws Error.
void RecipeRun::fetch_pending(const std::vector<std::string>& digests) {
    std::vector<std::pair<std::size_t, oci::Descriptor>> wanted;
    {
        std::lock_guard lock(mutex_);
        for (const auto& digest : digests)
            if (auto it = pending_blobs_.find(digest); it != pending_blobs_.end())
                wanted.push_back(it->second);
    }
    if (wanted.empty()) return;
    std::uint64_t bytes = 0;
    for (const auto& [source, d] : wanted)
        bytes += session_.remote->fetch(source, {d}, store_.blobs(), &progress_);
    std::lock_guard lock(mutex_);
    for (const auto& [source, d] : wanted)
        pending_blobs_.erase(d.digest);
    stats_.total.bytes_downloaded += bytes;
    std::erase_if(pending_records_, [&](const cache::ActionRecord& r) {
        for (const auto& hex : r.blobs)
            if (!store_.blobs().has(hex)) return false;
        actions_.put(r);
        return true;
    });
}

// Before a RUN or deps step runs: its cache mounts that are empty here and in a --cache-from
// cache are filled from it, so a step that misses still finds a warm package cache.
void RecipeRun::restore_mounts(const StepRef& ref) {
    if (ref.is_base() || !session_.remote_usable()) return;
    const auto& step = ref.step();
    const recipe::RunStep* run = step.run ? &*step.run : step.deps ? &step.deps->run : nullptr;
    if (!run) return;
    for (const auto& c : run->cache) {
        auto dir = cache_mount_dir(store_.dir(), c.id.empty() ? c.target : c.id);
        auto found = session_.remote->find_mount(dir.filename().string());
        if (!found) continue;
        try {
            auto bytes = session_.remote->restore_mount(found->second, found->first, dir, store_);
            if (bytes == 0) continue;
            progress_.event("cache",
                            "cache mount " + c.target + " restored (" + human_size(bytes) + ")");
            std::lock_guard lock(mutex_);
            stats_.total.bytes_downloaded += bytes;
        } catch (const std::exception& e) {
            session_.remote_failed(session_.remote->ref(found->second).text + ": " + e.what());
            return;
        }
    }
}

// The one action record of every kind: what the key was made of, the step's identity and
// inputs when it has them, the result and the blobs it needs.
void RecipeRun::put_record(const cache::KeyBuilder& kb, const StepKey* key,
                           const nlohmann::json& result, const std::vector<std::string>& blobs) {
    cache::ActionRecord rec;
    rec.key = kb.hex();
    rec.fields = kb.fields();
    if (key) {
        rec.step_id = key->step_id;
        rec.inputs = key->inputs;
        rec.input_count = key->inputs.size();
    }
    rec.result = result;
    rec.blobs = blobs;
    actions_.put(rec);
}

// Points the step's identity at the key it resolved to, for `why` (skipped when unchanged,
// so a no-op build writes nothing).
void RecipeRun::remember_step(const std::string& step_id, const std::string& key) {
    auto current = read_file(actions_.step_path(step_id), 256);
    if (current && current->starts_with(key)) return;
    actions_.set_last_for_step(step_id, key);
}

// The compressed blocks of the layers the step's last build wrote (the record its identity
// points at, steps/): an edit of a big copy step leaves most of them to copy. nullptr when
// there is none. Only maps of this recipe's compression are taken (BlockSource's format).
std::shared_ptr<layer::BlockSource> RecipeRun::blocks_of_last_build(const std::string& step_id) {
    if (step_id.empty()) return nullptr;
    auto text = read_file(actions_.step_path(step_id), 256);
    if (!text || text->size() < 64 || !cache::is_sha256_hex(text->substr(0, 64))) return nullptr;
    auto record = actions_.read(text->substr(0, 64), cache::WithInputs::no);
    if (!record) return nullptr;
    auto source = std::make_shared<layer::BlockSource>(layer::block_format(layer_compression()));
    cache::BlockMaps maps(store_.dir());
    for (const auto& hex : record->blobs) {
        auto map = maps.read(hex);
        if (!map) continue;
        auto fd = store_.blobs().open(hex);
        if (fd) source->add(std::move(*fd), *map);
    }
    return source->size() ? source : nullptr;
}

layer::LayerInfo RecipeRun::write_layer_blob(std::vector<layer::Entry> entries,
                                             std::optional<std::int64_t> epoch,
                                             const std::string& id, const layer::BlockSource* reuse,
                                             layer::ContentSource* content) {
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
    lo.compression = layer_compression();
    lo.threads = options_.threads;
    lo.reuse = reuse;
    lo.content = content;
    auto info = layer::write_layer(std::move(entries), lo, fd.get());
    if (!info) throw Error("writing layer: " + info.error());
    fd.reset();
    auto hex = info->digest.substr(info->digest.find(':') + 1);
    store_.blobs().commit_temp(temp, hex);
    guard.armed = false;
    // A one-block layer gains nothing from a map: compressing it again is one block's work.
    if (info->blocks.blocks.size() > 1) cache::BlockMaps(store_.dir()).put(hex, info->blocks);
    if (info->blocks_reused > 0)
        progress_.event("blocks",
                        (id.empty() ? "" : id + ": ") + "reused " +
                            std::to_string(info->blocks_reused) + " of " +
                            std::to_string(info->blocks.blocks.size()) + " compressed blocks (" +
                            human_size(info->reused_input_bytes) + " not compressed again" +
                            (info->skipped_input_bytes
                                 ? ", " + human_size(info->skipped_input_bytes) + " not read again"
                                 : std::string()) +
                            ")");
    return *info;
}

const runtime::RuntimeChoice& RecipeRun::runtime() {
    std::lock_guard lock(mutex_);
    if (!runtime_) {
        auto choice = runtime::choose_runtime(options_.runtime);
        if (!choice) throw Error("no OCI runtime for RUN steps: " + choice.error());
        runtime_ = std::move(*choice);
        progress_.event("runtime", runtime_->description());
    }
    return *runtime_;
}

// ---- the output -----------------------------------------------------------------------------

void RecipeRun::apply_config(const recipe::Stage& stage, StageState& state) {
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

void RecipeRun::write_outputs(const oci::Descriptor& manifest) {
    for (const auto& spec : options_.outputs) {
        auto target = exporter::parse_target(spec);
        if (!target) throw Error("-o " + spec + ": " + target.error(), ExitCode::usage);
        target->disk = options_.disk;
        progress_.event("export", exporter::to_string(*target));
        exporter::export_image(store_, manifest, *target,
                               recipe_.name + ":" + recipe_.tags.front());
    }
}

// The output stage's config and manifest into the store, the outputs written, and only then
// the tags: a failed output leaves every ref as it was (docs/cli.md).
BuildResult RecipeRun::publish_output() {
    StageState& out = done_.at(recipe_.output_stage);
    ensure_local(out);
    auto config_bytes = out.config.serialize();
    out.manifest.config = store_.put_blob(std::string(oci::media_type::config), config_bytes);
    out.manifest.annotations = recipe_.annotations;
    auto manifest_bytes = oci::serialize(out.manifest);
    auto manifest = store_.put_blob(std::string(oci::media_type::manifest), manifest_bytes);
    write_outputs(manifest);
    throw_if_interrupted(); // during an output: no ref moves
    for (const auto& tag : recipe_.tags) {
        auto ref = recipe_.name + ":" + tag;
        auto current = store_.resolve(ref);
        if (!current || current->digest != manifest.digest) store_.set_ref(ref, manifest);
    }
    cache::add_stats(store_.dir(), stats_);
    if (!pending_records_.empty())
        progress_.event("cache", label_ + std::to_string(pending_records_.size()) +
                                     " step records stay in the registry cache (their layers "
                                     "were not needed here); a build without --cache-from "
                                     "makes those steps again");
    BuildResult result;
    result.name = recipe_.name;
    result.tags = recipe_.tags;
    result.manifest_digest = manifest.digest;
    result.manifest_size = static_cast<std::uint64_t>(manifest.size);
    progress_.event("done",
                    label_ + recipe_.name + ":" + recipe_.tags.front() + " " + manifest.digest);
    return result;
}

} // namespace

BuildResult execute(const recipe::Recipe& recipe, Plan& plan, const BuildOptions& options,
                    Progress& progress, BuildSession& session, ExecMode mode,
                    const std::string& label) {
    // Outputs are checked before any work, so a typo fails fast.
    if (mode == ExecMode::build)
        for (const auto& spec : options.outputs)
            if (auto t = exporter::parse_target(spec); !t)
                throw Error("-o " + spec + ": " + t.error(), ExitCode::usage);
    RecipeRun run(recipe, options, progress, session, mode, label);
    run.run_stages(plan);
    if (mode == ExecMode::plan) return {};
    return run.publish_output();
}

} // namespace factory::builder
