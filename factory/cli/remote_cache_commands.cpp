#include "factory/cli/remote_cache_commands.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "cache/action_store.hpp"
#include "cache/lock.hpp"
#include "cache/root.hpp"
#include "cache/stats.hpp"
#include "factory/builder/remote_cache.hpp"
#include "factory/oci/layout.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::cli {

namespace fs = std::filesystem;

void add_remote_cache_flags(CLI::App& build, std::vector<std::string>& cache_from,
                            std::string& cache_to) {
    build
        .add_option("--cache-from", cache_from,
                    "Also look up steps in the registry cache docker://HOST/REPO:TAG (repeatable, "
                    "in order; a registry that fails is one warning)")
        ->allow_extra_args(false);
    build.add_option("--cache-to", cache_to,
                     "Export the build's step records (and cache mounts) to "
                     "docker://HOST/REPO:TAG[,mode=min|max][,keep=N] (default mode=max, keep=3)");
}

RemoteCacheCommands::RemoteCacheCommands(CLI::App& cache_cmd, std::string& cache_dir) {
    export_ = cache_cmd.add_subcommand(
        "export", "Export every step record and cache mount of the store to a registry cache");
    export_->add_option("--cache", cache_dir, "Store directory");
    export_->add_option("ref", ref_, "docker://HOST/REPO:TAG[,mode=min|max][,keep=N]")->required();
    export_->add_option("--progress", flags_.progress, "auto|tty|plain|json");
    add_registry_flags(*export_, flags_, JobsFlag::no);
    import_ = cache_cmd.add_subcommand(
        "import",
        "Download a registry cache's step records, blobs and cache mounts into the store");
    import_->add_option("--cache", cache_dir, "Store directory");
    import_->add_option("ref", ref_, "docker://HOST/REPO:TAG")->required();
    import_->add_option("--progress", flags_.progress, "auto|tty|plain|json");
    add_registry_flags(*import_, flags_, JobsFlag::no);
}

namespace {

oci::Layout open_or_create(const fs::path& root) {
    std::error_code ec;
    fs::create_directories(root / "tmp", ec);
    if (ec) throw Error("cannot create the store at " + root.string() + ": " + ec.message());
    return oci::Layout::create(root, {.tmp_dir = root / "tmp"});
}

ProgressMode mode_of(const RegistryFlags& f) {
    auto mode = parse_progress_mode(f.progress);
    if (!mode)
        throw usage_error("--progress " + f.progress + ": expected auto, tty, plain or json");
    return *mode;
}

// Every record of the store, and every cache mount directory (named by its digest: the id is
// not kept in the store).
int run_export(const std::string& text, const fs::path& root, const RegistryFlags& flags) {
    auto ref = builder::parse_cache_ref(text, "cache export", builder::CacheUse::write);
    Progress progress(mode_of(flags));
    auto options = registry_client_options(flags, &progress, ref.ref.host);
    auto store = open_or_create(root);
    auto lock = cache::StoreLock::build(root);
    cache::ActionStore actions(root, store.blobs());
    builder::CacheExportItems items;
    for (const auto& r : actions.list())
        items.keys.push_back(r.key);
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(root / "mounts", ec))
        if (d.is_directory() && !d.path().filename().string().starts_with("."))
            items.mounts.emplace_back(d.path().filename().string(), d.path().filename().string());
    auto report = builder::export_cache(ref, store, items, options, &progress);
    std::printf("%s %s: %zu records (%zu from this store), %zu cache mounts, %zu blobs uploaded\n",
                ref.ref.str().c_str(), report.digest.c_str(), report.entries, report.exported,
                report.mounts, report.blobs_uploaded);
    return 0;
}

// Everything: each record's blobs are downloaded and verified, then the record is published;
// each mount fills its directory when the store's is empty.
int run_import(const std::string& text, const fs::path& root, const RegistryFlags& flags) {
    auto ref = builder::parse_cache_ref(text, "cache import", builder::CacheUse::read);
    Progress progress(mode_of(flags));
    auto options = registry_client_options(flags, &progress, ref.ref.host);
    auto store = open_or_create(root);
    auto lock = cache::StoreLock::build(root);
    cache::ActionStore actions(root, store.blobs());
    builder::RemoteCache remote(options);
    remote.load_or_throw(ref);
    std::size_t records = 0, mounts = 0;
    std::uint64_t bytes = 0;
    for (const auto& e : remote.entries()) {
        if (actions.lookup(e.entry.record.key)) continue;
        bytes += remote.fetch(e.source, e.entry.blobs, store.blobs(), &progress);
        actions.put(e.entry.record);
        ++records;
    }
    for (const auto& [m, source] : remote.mounts()) {
        auto got = remote.restore_mount(source, m, root / "mounts" / m.name, store);
        if (got > 0) ++mounts;
        bytes += got;
    }
    cache::Stats delta;
    delta.total.bytes_downloaded = bytes;
    cache::add_stats(root, delta);
    std::printf("%s: %zu records and %zu cache mounts imported, %s downloaded\n",
                ref.ref.str().c_str(), records, mounts, human_size(bytes).c_str());
    return 0;
}

} // namespace

std::optional<int> RemoteCacheCommands::dispatch(const std::string& cache_dir) {
    std::optional<InterruptGuard> interrupts; // a signal stops the transfers (cli.cpp reports it)
    if (export_->parsed() || import_->parsed()) interrupts.emplace();
    if (export_->parsed()) return run_export(ref_, cache::store_root(cache_dir), flags_);
    if (import_->parsed()) return run_import(ref_, cache::store_root(cache_dir), flags_);
    return std::nullopt;
}

} // namespace factory::cli
