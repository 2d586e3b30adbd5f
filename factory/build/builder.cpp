#include "factory/build/builder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <set>

#include "factory/build/copy.hpp"
#include "factory/build/tree.hpp"
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

namespace factory::build {

namespace {

namespace fs = std::filesystem;

// What a finished (or running) stage is: its image so far and its file tree.
struct StageState {
    oci::Manifest manifest;
    oci::ImageConfig config;
    Tree tree;
    bool tree_known = true; // false until a base's layers have been read into the tree
};

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
    Builder(const recipe::Recipe& recipe, const BuildOptions& options, Progress& progress)
        : recipe_(recipe), options_(options), progress_(progress),
          store_(open_store(options.store_root)), scratch_(store_.dir() / "tmp", "build-") {
        load_ignore_rules();
        find_stage_sources();
    }

    BuildResult run();

  private:
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
    void run_copy(const recipe::Stage& stage, std::size_t index, StageState& state);
    layer::LayerInfo write_layer_blob(std::vector<layer::Entry> entries);
    void apply_config(const recipe::Stage& stage, StageState& state);
    oci::Descriptor publish(StageState& state);
    void write_outputs(const oci::Descriptor& manifest);

    const recipe::Recipe& recipe_;
    const BuildOptions& options_;
    Progress& progress_;
    oci::Layout store_;
    TempDir scratch_;          // extracted base-layer content for copies from stages
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

void Builder::import_base(const recipe::Stage& stage, StageState& state) {
    const auto& base = stage.base;
    oci::Platform platform;
    platform.os = recipe_.os;
    platform.architecture = recipe_.architecture;
    progress_.step_start(stage.name + " base", "import " + base.path.string() +
                                                   (base.tag.empty() ? "" : ":" + base.tag));
    auto imported = base.kind == recipe::Base::Kind::oci_layout
                        ? oci::import_oci_layout(base.path, base.tag, store_.blobs(), platform)
                        : oci::import_oci_archive(base.path, base.tag, store_.blobs(), platform);
    if (!imported) {
        progress_.step_failed(stage.name + " base", imported.error());
        throw Error(base.where.str() + ": base " + base.path.string() + ": " + imported.error());
    }
    state.manifest = imported->manifest;
    state.manifest.annotations.clear();
    state.manifest.media_type = std::string(oci::media_type::manifest);
    state.manifest.config.media_type = std::string(oci::media_type::config);
    for (auto& l : state.manifest.layers)
        l.media_type = std::string(oci::media_type::to_oci_layer(l.media_type));
    state.config = imported->config;
    state.tree_known = false;
    progress_.step_done(stage.name + " base", short_digest(imported->manifest_desc.digest) + " " +
                                                  std::to_string(state.manifest.layers.size()) +
                                                  " layers");
}

StageState Builder::start_stage(const recipe::Stage& stage) {
    StageState state;
    oci::Platform platform;
    platform.os = recipe_.os;
    platform.architecture = recipe_.architecture;
    switch (stage.base.kind) {
    case recipe::Base::Kind::scratch: state.config = oci::ImageConfig(platform); break;
    case recipe::Base::Kind::oci_layout:
    case recipe::Base::Kind::oci_archive: import_base(stage, state); break;
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
    for (const auto& layer : state.manifest.layers) {
        auto hex = layer.sha256_hex();
        if (!hex) throw Error("base layer " + layer.digest + ": " + hex.error());
        if (auto ok = store_.blobs().verify(*hex); !ok) throw Error(ok.error());
        state.tree.apply_layer_blob(store_.blobs().path(*hex), content);
    }
    state.tree_known = true;
}

layer::LayerInfo Builder::write_layer_blob(std::vector<layer::Entry> entries) {
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
    lo.epoch = recipe_.epoch;
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

void Builder::run_copy(const recipe::Stage& stage, std::size_t index, StageState& state) {
    const auto& step = stage.steps[index];
    std::string id = stage.name + " " + std::to_string(index + 1) + "/" +
                     std::to_string(stage.steps.size());
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
    std::string what = describe_copy(step);
    progress_.step_start(id, what);
    try {
        auto entries = plan_copy(step, ctx);
        state.tree.apply(entries);
        auto info = write_layer_blob(std::move(entries));
        oci::Descriptor desc;
        desc.media_type = info.media_type;
        desc.digest = info.digest;
        desc.size = static_cast<std::int64_t>(info.size);
        state.manifest.layers.push_back(desc);
        oci::History h;
        h.created = rfc3339(recipe_.epoch);
        h.created_by = "factory " + what;
        state.config.add_layer(info.diff_id, h);
        progress_.step_done(id, short_digest(info.digest) + " " + human_size(info.size));
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
        exporter::export_image(store_, manifest, *target, recipe_.name + ":" + recipe_.tags.front());
    }
}

BuildResult Builder::run() {
    // Outputs are checked before any work, so a typo fails fast.
    for (const auto& spec : options_.outputs)
        if (auto t = exporter::parse_target(spec); !t)
            throw Error("-o " + spec + ": " + t.error(), ExitCode::usage);
    for (const auto& stage : recipe_.stages) {
        StageState state = start_stage(stage);
        for (std::size_t i = 0; i < stage.steps.size(); ++i)
            run_copy(stage, i, state);
        apply_config(stage, state);
        done_[stage.name] = std::move(state);
    }
    StageState& out = done_.at(recipe_.output_stage);
    oci::Descriptor manifest = publish(out);
    for (const auto& tag : recipe_.tags)
        store_.set_ref(recipe_.name + ":" + tag, manifest);
    write_outputs(manifest);
    BuildResult result;
    result.name = recipe_.name;
    result.tags = recipe_.tags;
    result.manifest_digest = manifest.digest;
    result.manifest_size = static_cast<std::uint64_t>(manifest.size);
    progress_.event("done", recipe_.name + ":" + recipe_.tags.front() + " " + manifest.digest);
    return result;
}

} // namespace

BuildResult build_recipe(const fs::path& recipe_path, const BuildOptions& options,
                         Progress& progress) {
    recipe::LoadOptions lo;
    lo.args = options.args;
    lo.source_date_epoch = options.source_date_epoch;
    recipe::Recipe recipe = recipe::load(recipe_path, lo);
    Builder builder(recipe, options, progress);
    return builder.run();
}

} // namespace factory::build
