#include "factory/cli/cache_commands.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <unordered_set>
#include <vector>

#include "cache/action_store.hpp"
#include "cache/gc.hpp"
#include "cache/stats.hpp"
#include "cache/verify.hpp"
#include "factory/builder/key_fields.hpp"
#include "factory/builder/source_prune.hpp"
#include "factory/oci/layout.hpp"
#include "factory/runtime/snapshot_store.hpp"
#include "factory/shell/environment.hpp"
#include "factory/util/files.hpp"
#include "factory/util/error.hpp"
#include "factory/util/progress.hpp"

namespace factory::cli {

namespace {

namespace fs = std::filesystem;

oci::Layout open_store(const fs::path& root) {
    if (!fs::exists(root / "oci-layout"))
        throw Error("no store at " + root.string() + " (build something first, or pass --cache)");
    return oci::Layout::open(root, {.tmp_dir = root / "tmp"});
}

cache::RootBlobs roots_of(const fs::path& root) {
    return [root] { return builder::store_root_blobs(root); };
}

// The diff_ids (hex) of the layers of every image a ref names, and the lowers of every shell
// environment's overlay (ROOT/envs/*/env.json). A ref whose image can't be read keeps nothing:
// a snapshot is only a cache of its blob, unpacked again when needed.
std::unordered_set<std::string> snapshots_in_use(const fs::path& root, oci::Layout& store) {
    std::unordered_set<std::string> keep;
    for (const auto& [name, desc] : store.refs()) {
        auto manifest = store.read_manifest(desc);
        if (!manifest) continue;
        auto config = store.read_config(manifest->config, manifest->layers.size());
        if (!config) continue;
        for (const auto& d : config->diff_ids())
            if (d.starts_with("sha256:")) keep.insert(d.substr(7));
    }
    std::error_code ec;
    for (fs::directory_iterator it(root / "envs", ec), end; !ec && it != end; it.increment(ec)) {
        auto text = read_file(it->path() / "env.json", 1 << 20);
        if (!text) continue;
        if (auto env = shell::record_from_json(*text))
            for (const auto& l : env->lowers)
                keep.insert(l);
    }
    return keep;
}

cache::LockWait waiting(const char* what) {
    cache::LockWait w;
    w.on_wait = [what] { std::fprintf(stderr, "factory: %s: waiting for running builds\n", what); };
    return w;
}

std::string ago(std::int64_t ns) {
    return human_duration(std::time(nullptr) - static_cast<std::time_t>(ns / 1'000'000'000)) +
           " ago";
}

} // namespace

namespace {

// The parts of the store's size, in the order `cache stats` lists them; they add up to the
// total. Names double as the JSON keys (NAME_bytes).
std::vector<std::pair<const char*, std::uint64_t>> usage_parts(const cache::Usage& u) {
    return {{"blob", u.blob_bytes},         {"record", u.record_bytes},
            {"snapshot", u.snapshot_bytes}, {"mount", u.mount_bytes},
            {"git", u.git_bytes},           {"shell", u.shell_bytes},
            {"temp", u.temp_bytes},         {"quarantine", u.quarantine_bytes},
            {"other", u.other_bytes}};
}

void print_usage(const fs::path& root, const cache::Usage& u) {
    std::printf("store:    %s\n", root.c_str());
    std::printf("size:     %s\n", human_size(u.total_bytes()).c_str());
    auto count = [](std::uint64_t n, const char* what) {
        return " (" + std::to_string(n) + " " + what + ")";
    };
    const std::map<std::string, std::string> label{
        {"blob", "blobs" + count(u.blobs, "blobs")},
        {"record", "step records" + count(u.records, "records")},
        {"snapshot", "snapshots (unpacked layers)"},
        {"mount", "cache mounts"},
        {"git", "git mirrors"},
        {"shell", "shell homes, volumes, environments"},
        {"temp", "temp files"},
        {"quarantine", "quarantine"},
        {"other", "other (index, stat cache, step pointers, locks, stats)"}};
    for (const auto& [name, bytes] : usage_parts(u))
        std::printf("  %10s  %s\n", human_size(bytes).c_str(), label.at(name).c_str());
}

} // namespace

int run_cache_stats(const fs::path& root, bool json, bool zero) {
    open_store(root);
    auto stats = cache::read_stats(root);
    auto usage = cache::store_usage(root);
    if (json) {
        nlohmann::json j;
        j["hits"] = stats.total.hits;
        j["misses"] = stats.total.misses;
        j["bytes_written"] = stats.total.bytes_written;
        j["bytes_reused"] = stats.total.bytes_reused;
        j["remote_hits"] = stats.total.remote_hits;
        j["bytes_downloaded"] = stats.total.bytes_downloaded;
        for (const auto& [kind, c] : stats.kinds)
            j["kinds"][kind] = {{"hits", c.hits},
                                {"misses", c.misses},
                                {"bytes_written", c.bytes_written},
                                {"bytes_reused", c.bytes_reused},
                                {"remote_hits", c.remote_hits},
                                {"bytes_downloaded", c.bytes_downloaded}};
        j["store"] = {{"blobs", usage.blobs}, {"records", usage.records}};
        for (const auto& [name, bytes] : usage_parts(usage))
            j["store"][std::string(name) + "_bytes"] = bytes;
        j["store"]["total_bytes"] = usage.total_bytes();
        std::printf("%s\n", j.dump().c_str());
    } else {
        print_usage(root, usage);
        std::printf("%-8s %8s %8s %12s %12s %8s %12s\n", "KIND", "HITS", "MISSES", "WRITTEN",
                    "REUSED", "REMOTE", "DOWNLOADED");
        auto row = [](const std::string& kind, const cache::Counters& c) {
            std::printf("%-8s %8llu %8llu %12s %12s %8llu %12s\n", kind.c_str(),
                        static_cast<unsigned long long>(c.hits),
                        static_cast<unsigned long long>(c.misses),
                        human_size(c.bytes_written).c_str(), human_size(c.bytes_reused).c_str(),
                        static_cast<unsigned long long>(c.remote_hits),
                        human_size(c.bytes_downloaded).c_str());
        };
        for (const auto& [kind, c] : stats.kinds)
            row(kind, c);
        row("total", stats.total);
    }
    if (zero) cache::zero_stats(root);
    return 0;
}

int run_cache_ls(const fs::path& root) {
    auto store = open_store(root);
    cache::ActionStore actions(root, store.blobs());
    auto records = actions.list();
    std::sort(records.begin(), records.end(),
              [](const auto& a, const auto& b) { return a.last_used > b.last_used; });
    struct Row {
        std::string key, kind, size, used, what;
    };
    std::vector<Row> rows;
    int kind_width = 4; // "KIND"; the kinds go up to "copy-layer"
    for (const auto& r : records) {
        auto rec = actions.read(r.key);
        std::string kind = "?", what;
        if (rec) {
            kind = builder::field_value(rec->fields, builder::field::kind);
            what = builder::describe_record(rec->fields);
        }
        if (what.size() > 60) what = what.substr(0, 57) + "...";
        kind_width = std::max(kind_width, static_cast<int>(kind.size()));
        rows.push_back({r.key.substr(0, 12), kind, human_size(r.bytes), ago(r.last_used), what});
    }
    std::printf("%-14s %-*s %-10s %-10s %s\n", "KEY", kind_width, "KIND", "SIZE", "USED", "WHAT");
    for (const auto& r : rows)
        std::printf("%-14s %-*s %-10s %-10s %s\n", r.key.c_str(), kind_width, r.kind.c_str(),
                    r.size.c_str(), r.used.c_str(), r.what.c_str());
    return 0;
}

int run_cache_prune(const fs::path& root, const PruneArgs& args) {
    auto store = open_store(root);
    cache::PruneOptions o;
    o.dry_run = args.dry_run;
    // Named as build names them: "--max-size lots: invalid size …".
    if (!args.max_size.empty()) {
        auto size = cache::parse_size(args.max_size);
        if (!size) throw usage_error("--max-size " + args.max_size + ": " + size.error());
        o.max_size = *size;
    }
    if (!args.older_than.empty()) {
        auto age = cache::parse_duration(args.older_than);
        if (!age) throw usage_error("--older-than " + args.older_than + ": " + age.error());
        o.older_than = *age;
    }
    o.wait = waiting("cache prune");
    std::uint64_t sources_removed = 0;
    auto report = cache::prune(root, store.blobs(), o, roots_of(root));
    {
        // Snapshots (unpacked layers) of no image a ref names and of no running shell
        // environment. Under the exclusive store lock: builds, `factory run` and environments
        // being started hold it shared while they pick snapshots.
        auto lock = cache::StoreLock::maintenance(root, o.wait);
        auto keep = snapshots_in_use(root, store);
        for (auto& [hex, bytes] : runtime::prune_snapshots(root, keep, o.dry_run)) {
            report.items.push_back({"snapshot", hex, bytes, "unpacked layer of no ref or shell"});
            report.bytes_freed += bytes;
            ++report.snapshots_removed;
        }
        // Mirrors and downloads no remaining step record names (builder/source_prune.hpp).
        for (auto& item : builder::prune_sources(root, store.blobs(), {o.older_than, o.dry_run})) {
            report.bytes_freed += item.bytes;
            ++sources_removed;
            report.items.push_back(std::move(item));
        }
    }
    for (const auto& item : report.items) {
        // A key or digest is shortened, as everywhere; a path (a temp, a mirror) stays whole.
        bool hex = item.name.find_first_not_of("0123456789abcdef") == std::string::npos;
        std::printf("%s %-10s %-14s %10s  %s\n", args.dry_run ? "would remove" : "removed",
                    item.kind.c_str(), (hex ? item.name.substr(0, 14) : item.name).c_str(),
                    human_size(item.bytes).c_str(), item.reason.c_str());
    }
    std::printf("%s %s: %llu step records, %llu blobs, %llu block maps, %llu listings, %llu "
                "snapshots, %llu temp files, %llu mirrors and downloads; %s kept\n",
                args.dry_run ? "would free" : "freed", human_size(report.bytes_freed).c_str(),
                static_cast<unsigned long long>(report.records_removed),
                static_cast<unsigned long long>(report.blobs_removed),
                static_cast<unsigned long long>(report.block_maps_removed),
                static_cast<unsigned long long>(report.listings_removed),
                static_cast<unsigned long long>(report.snapshots_removed),
                static_cast<unsigned long long>(report.temps_removed),
                static_cast<unsigned long long>(sources_removed),
                human_size(report.bytes_kept).c_str());
    return 0;
}

// The verdict at the end of the summary line: --repair is advised only for what it can fix (a
// missing blob a ref needs is not: its problem line says to rebuild or pull the image).
std::string verify_verdict(const cache::VerifyReport& report, bool repair) {
    if (report.clean()) return "clean";
    if (repair) return report.repairable() ? "repaired" : "NOT clean";
    return report.repairable() ? "NOT clean (run with --repair)" : "NOT clean";
}

int run_cache_verify(const fs::path& root, bool repair) {
    auto store = open_store(root);
    cache::VerifyOptions o;
    o.repair = repair;
    o.wait = waiting("cache verify");
    auto ref_blobs = [root] { return builder::store_ref_blobs(root); };
    auto report = cache::verify(root, store.blobs(), ref_blobs, o);
    for (const auto& p : report.problems)
        std::printf("problem: %s\n", p.c_str());
    for (const auto& r : report.repairs)
        std::printf("repaired: %s\n", r.c_str());
    // Stale temps don't make the store unclean (docs/cache.md "Verify and repair", step 5).
    if (report.stale_temps > 0 && !repair)
        std::printf("stale temps: %llu (%s), left by killed writers: --repair removes them\n",
                    static_cast<unsigned long long>(report.stale_temps),
                    human_size(report.stale_temp_bytes).c_str());
    std::printf("checked %llu blobs, %llu step records, %llu block maps, %llu listings, %llu refs' "
                "blobs: %s\n",
                static_cast<unsigned long long>(report.blobs_checked),
                static_cast<unsigned long long>(report.records_checked),
                static_cast<unsigned long long>(report.block_maps_checked),
                static_cast<unsigned long long>(report.listings_checked),
                static_cast<unsigned long long>(report.roots_checked),
                verify_verdict(report, repair).c_str());
    if (report.clean()) return 0;
    if (repair) {
        auto again = cache::verify(root, store.blobs(), ref_blobs, {});
        if (again.clean()) return 0;
        report = std::move(again);
    }
    std::fflush(stdout);
    std::fprintf(stderr, "factory: error: the store %s has %zu problem(s)%s\n", root.c_str(),
                 report.problems.size(), repair ? " that repair could not fix" : "");
    return 1;
}

int run_why(builder::BuildOptions options, const WhyArgs& args) {
    if (args.step && *args.step < 1)
        throw usage_error("--step " + std::to_string(*args.step) + ": steps count from 1");
    // No store yet: plan against an empty one in a temporary directory, removed afterwards, so
    // that nothing is written where the store would be (every step: never built before).
    std::optional<TempDir> empty;
    if (!fs::exists(options.store_root / "oci-layout")) {
        empty.emplace(fs::temp_directory_path(), "factory-why-");
        options.store_root = empty->path() / "store";
    }
    Progress quiet(ProgressMode::quiet);
    auto reports = builder::explain_recipe(args.recipe, options, quiet);
    int n = 0;
    bool any = false;
    for (const auto& r : reports) {
        ++n;
        if (args.step && n != *args.step) continue;
        any = true;
        if (r.cached) {
            std::printf("step %s (%s): cached\n", r.id.c_str(), r.what.c_str());
            continue;
        }
        for (const auto& reason : r.reasons)
            std::printf("step %s (%s): %s\n", r.id.c_str(), r.what.c_str(), reason.c_str());
    }
    if (args.step && !any)
        throw usage_error("--step " + std::to_string(*args.step) + ": the recipe has " +
                          std::to_string(reports.size()) +
                          (reports.size() == 1 ? " step" : " steps"));
    return 0;
}

} // namespace factory::cli
