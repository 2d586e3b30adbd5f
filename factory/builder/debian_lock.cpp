#include "factory/builder/debian_lock.hpp"

#include "cache/action_store.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/oci/layout.hpp"
#include "factory/runtime/tar_reader.hpp"
#include "factory/sources/debian_release.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

std::string debian_arch(const recipe::Recipe& r) {
    if (r.architecture == "arm" && r.variant == "v7") return "armhf";
    if (r.architecture == "arm") return "armel";
    if (r.architecture == "386") return "i386";
    if (r.architecture == "ppc64le") return "ppc64el";
    return r.architecture;
}

// The files of dpkg's database in the layer, written under `dir` as they are in the image.
Result<void> extract_dpkg_files(const fs::path& blob, const fs::path& dir) {
    auto reader = runtime::TarReader::open(blob, std::nullopt, {});
    if (!reader) return Unexpected(reader.error());
    for (;;) {
        auto e = (*reader)->next();
        if (!e) return Unexpected(e.error());
        if (!*e) return {};
        std::string path = archive_entry_pathname(*e);
        if (path.starts_with("./")) path = path.substr(2);
        if (path != "var/lib/dpkg/status" && path != "var/lib/dpkg/arch") continue;
        std::string data;
        auto r = (*reader)->read_data([&](std::int64_t, std::string_view bytes) -> Result<void> {
            data.append(bytes);
            return {};
        });
        if (!r) return Unexpected(r.error());
        fs::create_directories(dir / "var/lib/dpkg");
        write_file_atomic(dir / path, data);
    }
}

} // namespace

sources::DebianSpec debian_spec(const recipe::Stage& stage, const recipe::Recipe& recipe) {
    const auto& deb = stage.base.debian;
    sources::DebianSpec spec;
    spec.suite = deb.suite;
    spec.variant = deb.variant;
    spec.include = deb.include;
    spec.mirror = deb.mirror;
    spec.mirror = sources::resolve_mirror(spec);
    spec.components = deb.components;
    spec.architecture = deb.architecture.empty() ? debian_arch(recipe) : deb.architecture;
    return spec;
}

std::map<std::string, std::string> package_map(const std::string& lines) {
    std::map<std::string, std::string> out;
    std::size_t start = 0;
    while (start < lines.size()) {
        auto end = lines.find('\n', start);
        if (end == std::string::npos) end = lines.size();
        auto line = lines.substr(start, end - start);
        start = end + 1;
        auto eq = line.find('=');
        if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return out;
}

std::optional<StoredDebian> stored_debian(const recipe::Recipe& recipe, const StepRef& base,
                                          const BuildOptions& options) {
    StepEnv env;
    env.recipe = &recipe;
    env.options = &options;
    StageState state;
    auto key = kind_of(base).key(base, env, state);
    auto store = oci::Layout::create(options.store_root, {.tmp_dir = options.store_root / "tmp"});
    cache::ActionStore actions(options.store_root, store.blobs());
    auto record = actions.lookup(key.fields.hex());
    if (!record) return std::nullopt;
    auto layer = result_layer(record->result);
    std::error_code ec;
    fs::create_directories(options.store_root / "tmp", ec);
    TempDir work(options.store_root / "tmp", "lock-");
    auto blob = store.blobs().path(layer.sha256_hex().value_or(""));
    if (auto r = extract_dpkg_files(blob, work.path()); !r)
        throw Error(base.id() + ": " + r.error());
    auto lines = sources::resolved_packages(work.path());
    if (!lines) throw Error(base.id() + ": " + lines.error());
    StoredDebian out;
    out.packages = package_map(*lines);
    if (auto it = record->result.find("release_date");
        it != record->result.end() && it->is_string())
        out.release_date = it->get<std::string>();
    return out;
}

std::string release_drift(const recipe::Pin& pin, const std::string& mirror, const std::string& now,
                          const std::string& recipe_file) {
    std::string pinned = pin.field("release-date");
    if (pinned.empty() || pinned == now) return "";
    return "the debian base drifted from the lock file: " + pin.id() + ": debian " +
           pin.field("suite") + ": the Release date of " + mirror + " moved " + pinned + " → " +
           now + "; build from a snapshot mirror that keeps " + pinned +
           " (mirror = \"http://snapshot.debian.org/archive/debian/" +
           sources::snapshot_time(pinned) +
           "\" or the first snapshot after it), or move the pin (factory lock --update " +
           pin.id() + " " + recipe_file + ")";
}

std::vector<std::string> package_drift(const std::string& id,
                                       const std::map<std::string, std::string>& pinned,
                                       const std::map<std::string, std::string>& installed) {
    std::vector<std::string> out;
    auto line = [&](const std::string& name, const std::string& a, const std::string& b) {
        out.push_back(id + ": debian package " + name + ": " + a + " → " + b);
    };
    for (const auto& [name, version] : pinned) {
        auto it = installed.find(name);
        if (it == installed.end())
            line(name, version, "(none)");
        else if (it->second != version)
            line(name, version, it->second);
    }
    for (const auto& [name, version] : installed)
        if (!pinned.count(name)) line(name, "(none)", version);
    return out;
}

} // namespace factory::builder
