#include "factory/builder/source_prune.hpp"

#include <set>

#include "cache/action_store.hpp"
#include "factory/builder/key_fields.hpp"
#include "factory/sources/download.hpp"
#include "factory/sources/git_mirror.hpp"
#include "factory/util/error.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

struct InUse {
    std::set<std::string> mirrors;   // directory names under git/
    std::set<std::string> downloads; // sha256 hex
};

InUse sources_in_use(const fs::path& root, cache::BlobStore& blobs) {
    InUse used;
    cache::ActionStore actions(root, blobs);
    for (const auto& file : actions.list()) {
        auto record = actions.read(file.key);
        if (!record) continue; // a record being replaced; GC removes unparsable ones
        for (const auto& [tag, value] : record->fields) {
            if (tag == field::git_url)
                used.mirrors.insert(sources::GitMirrors::mirror_path(root, value).filename());
            else if (tag == field::sha256)
                used.downloads.insert(value);
        }
    }
    return used;
}

std::uint64_t tree_bytes(const fs::path& p) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) return fs::is_regular_file(p, ec) ? fs::file_size(p, ec) : 0;
    std::uint64_t total = 0;
    for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::end(it);
         it.increment(ec))
        if (it->is_regular_file(ec)) total += it->file_size(ec);
    return total;
}

// When it was last fetched: a mirror's FETCH_HEAD (written by every fetch), else its
// directory; a download's file.
fs::file_time_type last_fetched(const fs::path& p) {
    std::error_code ec;
    auto t = fs::last_write_time(p / "FETCH_HEAD", ec);
    if (!ec) return std::max(t, fs::last_write_time(p, ec));
    return fs::last_write_time(p, ec);
}

class Sweeper {
  public:
    Sweeper(const SourcePruneOptions& options) : options_(options) {}

    // Whether `p`, unused, goes: always without --older-than, else once old enough.
    bool old_enough(const fs::path& p, std::string& reason) const {
        if (!options_.older_than) {
            reason = "no step record uses it";
            return true;
        }
        auto age = fs::file_time_type::clock::now() - last_fetched(p);
        if (age < *options_.older_than) return false;
        auto days = std::chrono::duration_cast<std::chrono::hours>(age).count() / 24;
        reason = "no step record uses it, fetched " + std::to_string(days) + " d ago";
        return true;
    }

    void remove(const std::vector<fs::path>& paths) const {
        if (options_.dry_run) return;
        for (const auto& p : paths) {
            std::error_code ec;
            fs::remove_all(p, ec);
            if (ec) throw Error("cannot remove " + p.string() + ": " + ec.message());
        }
    }

  private:
    const SourcePruneOptions& options_;
};

void prune_mirrors(const fs::path& root, const InUse& used, const Sweeper& sweep,
                   std::vector<cache::PruneItem>& out) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root / "git", ec)) {
        auto name = e.path().filename().string();
        if (!name.ends_with(".git") || used.mirrors.count(name)) continue;
        std::string reason;
        if (!sweep.old_enough(e.path(), reason)) continue;
        auto stem = e.path().stem().string();
        fs::path blobs_dir = root / "git" / (stem + ".blobs");
        fs::path lock = root / "locks" / "git" / (stem + ".lock");
        out.push_back({"mirror", stem, tree_bytes(e.path()) + tree_bytes(blobs_dir), reason});
        sweep.remove({e.path(), blobs_dir, lock});
    }
}

void prune_downloads(const fs::path& root, const InUse& used, const Sweeper& sweep,
                     std::vector<cache::PruneItem>& out) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root / "downloads", ec)) {
        auto name = e.path().filename().string();
        // Temp files of a fetch are swept as temps (gc.hpp); only finished downloads here.
        if (name.size() != 64 || name.find_first_not_of("0123456789abcdef") != std::string::npos ||
            used.downloads.count(name))
            continue;
        std::string reason;
        if (!sweep.old_enough(e.path(), reason)) continue;
        out.push_back({"download", name, tree_bytes(e.path()), reason});
        sweep.remove({e.path()});
    }
}

} // namespace

std::vector<cache::PruneItem> prune_sources(const fs::path& root, cache::BlobStore& blobs,
                                            const SourcePruneOptions& options) {
    auto used = sources_in_use(root, blobs);
    Sweeper sweep(options);
    std::vector<cache::PruneItem> out;
    prune_mirrors(root, used, sweep, out);
    prune_downloads(root, used, sweep, out);
    return out;
}

} // namespace factory::builder
