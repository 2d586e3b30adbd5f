#include "cache/verify.hpp"

#include "cache/block_map.hpp"
#include "cache/listings.hpp"

#include "cache/action_store.hpp"
#include "cache/stats.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"

#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <unordered_set>

namespace factory::cache {

namespace {

// The sha256 of a regular file's content, not following a symlink.
Result<std::string> hash_regular(const fs::path& p) {
    Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return Unexpected("cannot open " + p.string() + ": " + errno_string(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        return Unexpected(p.string() + " is not a regular file");
    Sha256 h;
    std::vector<char> buf(1 << 18);
    for (;;) {
        auto n = read_some(fd.get(), buf.data(), buf.size());
        if (!n) return Unexpected("cannot read " + p.string() + ": " + n.error());
        if (*n == 0) break;
        h.update(buf.data(), *n);
    }
    return h.hex_digest();
}

class Verifier {
  public:
    Verifier(const fs::path& root, BlobStore& blobs, const VerifyOptions& options)
        : root_(root), blobs_(blobs), actions_(root, blobs), options_(options) {}

    VerifyReport run(const ListRefBlobs& ref_blobs) {
        check_blobs();
        check_records();
        check_block_maps();
        check_listings();
        check_roots(ref_blobs);
        check_temps();
        if (options_.repair) record_store_size(root_, store_usage(root_).prunable_bytes());
        return std::move(report_);
    }

  private:
    void problem(std::string text) { report_.problems.push_back(std::move(text)); }

    // Moves a bad file out of blobs/ (or anywhere in the store) into quarantine/.
    void quarantine(const fs::path& file, const std::string& label) {
        auto dir = root_ / "quarantine";
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
        auto target = dir / (file.filename().string() + "." + unique_suffix());
        if (::rename(file.c_str(), target.c_str()) != 0)
            throw Error("cannot move " + file.string() + " to " + target.string() + ": " +
                        errno_string(errno));
        report_.repairs.push_back("moved " + label + " to " + fs::relative(target, root_).string());
    }

    void check_blobs() {
        std::vector<std::string> to_hash;
        std::error_code ec;
        for (fs::directory_iterator it(blobs_.dir(), ec), end; !ec && it != end; it.increment(ec)) {
            auto name = it->path().filename().string();
            if (name.starts_with(temp_prefix)) continue; // check_temps' business
            struct stat st {};
            if (::lstat(it->path().c_str(), &st) != 0) continue; // gone meanwhile
            if (!is_sha256_hex(name)) {
                bad_file(it->path(), name, "blobs/sha256/" + name + " is not named by a sha256");
            } else if (!S_ISREG(st.st_mode)) {
                bad_file(it->path(), name, "blob sha256:" + name + " is not a regular file");
            } else {
                to_hash.push_back(std::move(name));
            }
        }
        std::sort(to_hash.begin(), to_hash.end());
        auto results = hash_all(to_hash);
        for (std::size_t i = 0; i < to_hash.size(); ++i) {
            const auto& hex = to_hash[i];
            report_.blobs_checked++;
            if (!results[i]) {
                problem("cannot check blob sha256:" + hex + ": " + results[i].error());
                bad_.insert(hex); // unreadable is as good as missing for a record
            } else if (*results[i] != hex) {
                bad_file(blobs_.path(hex), hex,
                         "blob sha256:" + hex +
                             " is corrupt: content hashes to sha256:" + *results[i]);
            }
        }
    }

    void bad_file(const fs::path& p, const std::string& name, std::string text) {
        problem(std::move(text));
        report_.corrupt_blobs.push_back(name);
        bad_.insert(name);
        if (options_.repair) quarantine(p, "blobs/sha256/" + name);
    }

    // Rehashes every blob: sha256 runs at ~1.3 GB/s a core, so this is the long part.
    std::vector<Result<std::string>> hash_all(const std::vector<std::string>& hexes) {
        std::vector<Result<std::string>> results(hexes.size());
        unsigned n = options_.threads ? options_.threads : std::thread::hardware_concurrency();
        n = std::max(1u, std::min<unsigned>(n, static_cast<unsigned>(hexes.size())));
        std::atomic<std::size_t> next{0};
        auto work = [&] {
            for (std::size_t i; (i = next++) < hexes.size();)
                results[i] = hash_regular(blobs_.path(hexes[i]));
        };
        std::vector<std::jthread> workers;
        for (unsigned i = 1; i < n; ++i)
            workers.emplace_back(work);
        work();
        return results;
    }

    void check_records() {
        auto files = actions_.list();
        std::sort(files.begin(), files.end(),
                  [](const RecordFile& a, const RecordFile& b) { return a.key < b.key; });
        for (const auto& file : files) {
            report_.records_checked++;
            auto record = actions_.read(file.key, WithInputs::yes);
            std::string why;
            if (!record) {
                why = "is unreadable: " + record.error();
            } else {
                for (const auto& hex : record->blobs) {
                    if (bad_.count(hex)) {
                        why = "names blob sha256:" + hex + ", which is corrupt";
                        break;
                    }
                    if (!blobs_.has(hex)) {
                        why = "names blob sha256:" + hex + ", which is missing";
                        break;
                    }
                }
            }
            if (why.empty()) continue;
            problem("action record " + file.key + " " + why);
            report_.bad_records.push_back(file.key);
            if (options_.repair) {
                actions_.remove(file.key);
                report_.repairs.push_back("removed action record " + file.key);
            }
        }
        if (options_.repair) remove_orphan_inputs();
    }

    // An inputs file whose record was never published (a build killed between the two writes).
    void remove_orphan_inputs() {
        std::error_code ec;
        for (fs::recursive_directory_iterator it(root_ / "actions", ec), end; !ec && it != end;
             it.increment(ec)) {
            auto name = it->path().filename().string();
            if (name.size() != 64 + 7 || !name.ends_with(".inputs")) continue;
            auto key = name.substr(0, 64);
            struct stat st {};
            if (!is_sha256_hex(key) || ::lstat(actions_.record_path(key).c_str(), &st) == 0)
                continue;
            if (::unlink(it->path().c_str()) == 0)
                report_.repairs.push_back("removed orphan inputs file " +
                                          fs::relative(it->path(), root_).string());
        }
    }

    // A block map must parse and tile its blob, which must be there and sound: a layer writer
    // copies byte ranges of the blob by it (block_map.hpp).
    void check_block_maps() {
        BlockMaps maps(root_);
        auto hexes = maps.list();
        std::sort(hexes.begin(), hexes.end());
        for (const auto& hex : hexes) {
            report_.block_maps_checked++;
            std::string why;
            auto map = maps.read(hex);
            auto size = blobs_.size(hex);
            if (!map)
                why = "is unreadable: " + map.error();
            else if (bad_.count(hex))
                why = "is of a corrupt blob";
            else if (!size)
                why = "is of a missing blob";
            else if (auto tiled = check_block_tiling(*map, *size); !tiled)
                why = "does not match its blob: " + tiled.error();
            else if (auto states = check_block_midstates(*map, hex); !states)
                why = "does not match its blob: " + states.error();
            if (why.empty()) continue;
            problem("block map of blob sha256:" + hex + " " + why);
            report_.bad_block_maps.push_back(hex);
            if (options_.repair && maps.remove(hex))
                report_.repairs.push_back("removed block map of blob sha256:" + hex);
        }
    }

    // A listing must be whole (its checksum) and of a blob that is there and sound: a build
    // takes a stage's file tree from it instead of reading the blob (listings.hpp).
    void check_listings() {
        Listings listings(root_);
        auto hexes = listings.list();
        std::sort(hexes.begin(), hexes.end());
        for (const auto& hex : hexes) {
            report_.listings_checked++;
            std::string why;
            if (auto body = listings.read(hex); !body)
                why = "is unreadable: " + body.error();
            else if (bad_.count(hex))
                why = "is of a corrupt blob";
            else if (!blobs_.size(hex))
                why = "is of a missing blob";
            if (why.empty()) continue;
            problem("listing of blob sha256:" + hex + " " + why);
            report_.bad_listings.push_back(hex);
            if (options_.repair && listings.remove(hex))
                report_.repairs.push_back("removed listing of blob sha256:" + hex);
        }
    }

    void check_roots(const ListRefBlobs& ref_blobs) {
        if (!ref_blobs) return;
        RefBlobs listed;
        try {
            listed = ref_blobs();
        } catch (const std::exception& e) {
            problem(std::string("cannot list the blobs the refs need: ") + e.what());
            return;
        }
        for (auto& p : listed.problems)
            problem(std::move(p));
        auto& roots = listed.blobs;
        std::sort(roots.begin(), roots.end());
        roots.erase(std::unique(roots.begin(), roots.end()), roots.end());
        for (const auto& hex : roots) {
            report_.roots_checked++;
            std::string why;
            if (!is_sha256_hex(hex))
                why = "is not a valid digest";
            else if (bad_.count(hex))
                why = "is corrupt";
            else if (!blobs_.has(hex)) // a live check: a build may have published it meanwhile
                why = "is missing";
            if (why.empty()) continue;
            problem("blob sha256:" + hex + ", needed by a ref, " + why +
                    ": rebuild or pull that image again");
            report_.missing_root_blobs.push_back(hex);
        }
    }

    void check_temps() {
        auto temps = sweep_temps(root_, {std::chrono::hours(1), !options_.repair});
        report_.stale_temps = temps.size();
        for (const auto& t : temps)
            report_.stale_temp_bytes += t.bytes;
        if (options_.repair)
            for (const auto& t : temps)
                report_.repairs.push_back("removed stale temp " +
                                          fs::relative(t.path, root_).string() + " (" + t.why +
                                          ")");
    }

    fs::path root_;
    BlobStore& blobs_;
    ActionStore actions_;
    const VerifyOptions& options_;
    std::unordered_set<std::string> bad_; // corrupt or unreadable blobs (hex or bad names)
    VerifyReport report_;
};

} // namespace

VerifyReport verify(const fs::path& root, BlobStore& blobs, const ListRefBlobs& ref_blobs,
                    const VerifyOptions& options) {
    auto lock = options.repair ? StoreLock::maintenance(root, options.wait)
                               : StoreLock::build(root, options.wait);
    return Verifier(root, blobs, options).run(ref_blobs);
}

} // namespace factory::cache
