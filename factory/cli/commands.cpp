#include "factory/cli/commands.hpp"

#include <cstdio>
#include <cstdlib>
#include <optional>

#include "factory/export/export.hpp"
#include "factory/export/target.hpp"
#include "factory/cli/registry_commands.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/json.hpp"
#include "factory/oci/layout.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/util/error.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"
#include "factory/util/progress.hpp"

namespace factory::cli {

namespace {

oci::Layout open_store(const std::filesystem::path& root) {
    if (!std::filesystem::exists(root / "oci-layout"))
        throw Error("no store at " + root.string() + " (build something first, or pass --cache)");
    return oci::Layout::open(root);
}

std::int64_t image_size(const oci::Manifest& m) {
    std::int64_t total = m.config.size;
    for (const auto& l : m.layers)
        total += l.size;
    return total;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : " ") + s;
    return out;
}

// The image `ref` names in the store. An image that is not there — no store at all, or no
// such ref or digest prefix — is one condition with one exit code, 2 (as `factory run` and
// `factory shell`): the command line names something that does not exist.
oci::Descriptor find_image(const std::filesystem::path& root, const std::string& ref,
                           std::optional<oci::Layout>& store) {
    auto missing = [&] {
        return usage_error("no image '" + ref + "' in the store " + root.string());
    };
    if (!std::filesystem::exists(root / "oci-layout")) throw missing();
    store.emplace(oci::Layout::open(root));
    auto desc = store->resolve(ref);
    if (!desc) throw missing();
    return *desc;
}

} // namespace

// --secret id=ID,src=FILE | id=ID,env=VAR → (id, value). The value is read now and kept in
// memory only; it never reaches a log, a key or the store.
std::pair<std::string, std::string> parse_secret(const std::string& spec) {
    std::string id, src, env;
    std::size_t start = 0;
    while (start <= spec.size()) {
        auto end = spec.find(',', start);
        if (end == std::string::npos) end = spec.size();
        auto part = spec.substr(start, end - start);
        start = end + 1;
        auto eq = part.find('=');
        if (eq == std::string::npos)
            throw usage_error("--secret " + spec + ": expected id=ID,src=FILE or id=ID,env=VAR");
        auto k = part.substr(0, eq), v = part.substr(eq + 1);
        if (k == "id")
            id = v;
        else if (k == "src" || k == "source")
            src = v;
        else if (k == "env")
            env = v;
        else
            throw usage_error("--secret " + spec + ": unknown field '" + k + "' (id, src, env)");
    }
    if (id.empty() || src.empty() == env.empty())
        throw usage_error("--secret " + spec + ": expected id=ID and one of src=FILE or env=VAR");
    if (!src.empty()) {
        auto value = read_file(src, 1 << 20);
        if (!value) throw usage_error("--secret id=" + id + ": " + value.error());
        return {id, *value};
    }
    const char* v = std::getenv(env.c_str());
    if (!v) throw usage_error("--secret id=" + id + ": the variable " + env + " is not set");
    return {id, v};
}

std::map<std::string, std::string> parse_args(const std::vector<std::string>& raw) {
    std::map<std::string, std::string> out;
    for (const auto& a : raw) {
        auto eq = a.find('=');
        if (eq == std::string::npos || eq == 0)
            throw usage_error("--arg " + a + ": expected NAME=VALUE");
        out[a.substr(0, eq)] = a.substr(eq + 1);
    }
    return out;
}

int run_images(const ImagesArgs& args, const std::filesystem::path& store_root) {
    if (!args.json) std::printf("%-40s %-19s %s\n", "IMAGE", "DIGEST", "SIZE");
    // No store yet: nothing built, so nothing to list (and nothing is created by listing).
    if (!std::filesystem::exists(store_root / "oci-layout")) return 0;
    auto store = open_store(store_root);
    for (const auto& [name, desc] : store.refs()) {
        auto manifest = store.read_manifest(desc);
        std::int64_t size = manifest ? image_size(*manifest) : 0;
        if (args.json) {
            oci::Json j;
            j["name"] = name;
            j["digest"] = desc.digest;
            j["size"] = size;
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%-40s %-19s %s\n", name.c_str(), desc.digest.substr(0, 19).c_str(),
                        manifest ? human_size(static_cast<std::uint64_t>(size)).c_str()
                                 : "(unreadable)");
        }
    }
    return 0;
}

int run_inspect(const InspectArgs& args, const std::filesystem::path& store_root) {
    std::optional<oci::Layout> store;
    auto desc = find_image(store_root, args.ref, store);
    auto manifest = value_or_throw(store->read_manifest(desc));
    auto config = value_or_throw(store->read_config(manifest.config, manifest.layers.size()));
    if (args.json) {
        oci::Json j;
        j["digest"] = desc.digest;
        j["manifest"] = oci::to_json(manifest);
        j["config"] = config.canonical_json();
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("Image:        %s\n", args.ref.c_str());
    std::printf("Digest:       %s\n", desc.digest.c_str());
    std::printf("Platform:     %s\n", config.platform().str().c_str());
    std::printf("Size:         %s\n",
                human_size(static_cast<std::uint64_t>(image_size(manifest))).c_str());
    if (!config.entrypoint().empty())
        std::printf("Entrypoint:   %s\n", join(config.entrypoint()).c_str());
    if (!config.cmd().empty()) std::printf("Cmd:          %s\n", join(config.cmd()).c_str());
    if (!config.working_dir().empty())
        std::printf("WorkingDir:   %s\n", config.working_dir().c_str());
    if (!config.user().empty()) std::printf("User:         %s\n", config.user().c_str());
    for (const auto& e : config.env())
        std::printf("Env:          %s\n", e.c_str());
    for (const auto& [k, v] : config.labels())
        std::printf("Label:        %s=%s\n", k.c_str(), v.c_str());
    for (const auto& p : config.exposed_ports())
        std::printf("ExposedPort:  %s\n", p.c_str());
    for (const auto& v : config.volumes())
        std::printf("Volume:       %s\n", v.c_str());
    if (!config.stop_signal().empty())
        std::printf("StopSignal:   %s\n", config.stop_signal().c_str());
    std::printf("Layers:\n");
    auto diff_ids = config.diff_ids();
    auto history = config.history();
    std::size_t h = 0;
    for (std::size_t i = 0; i < manifest.layers.size(); ++i) {
        while (h < history.size() && history[h].empty_layer)
            ++h;
        const auto& l = manifest.layers[i];
        std::printf("  %s  %10s  %s\n", l.digest.c_str(),
                    human_size(static_cast<std::uint64_t>(l.size)).c_str(),
                    h < history.size() ? history[h].created_by.c_str() : "");
        ++h;
    }
    (void)diff_ids;
    return 0;
}

int run_export(ExportArgs args, const std::filesystem::path& store_root,
               const RegistryFlags& registry_flags) {
    auto pushes = take_registry_outputs(args.outputs);
    if (!pushes.empty()) transfer_jobs(registry_flags); // checked before anything is written
    std::vector<exporter::Target> targets;
    auto disk = parse_disk_options(args.disk);
    for (const auto& spec : args.outputs) {
        auto t = exporter::parse_target(spec);
        if (!t) throw usage_error(t.error());
        t->disk = disk;
        targets.push_back(*t);
    }
    std::optional<oci::Layout> store;
    auto desc = find_image(store_root, args.ref, store);
    // The name an output gets by default: the ref as given, with :latest when it has no tag.
    std::string name = args.ref;
    if (name.starts_with("sha256:") || name == desc.digest.substr(7, name.size()))
        name = "image:latest"; // a digest, or a prefix of one
    else if (name.find(':') == std::string::npos)
        name += ":latest";
    // SIGINT, SIGTERM, SIGHUP: the output being written is not renamed into place, its temp
    // file is removed, the rest are not started (docs/cli.md "Interrupting a build").
    InterruptGuard interrupts;
    try {
        for (const auto& t : targets) {
            exporter::export_image(*store, desc, t, name);
            throw_if_interrupted();
            std::printf("%s %s\n", exporter::to_string(t).c_str(), desc.digest.c_str());
        }
        push_outputs(pushes, desc.digest, store_root, registry_flags);
    } catch (const Error&) {
        throw_if_interrupted(); // whatever the output's own error says
        throw;
    }
    throw_if_interrupted();
    return 0;
}

} // namespace factory::cli
