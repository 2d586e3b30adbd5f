#pragma once
// `factory cache verify [--repair]` (docs/cache.md "Verify and repair").
//
// Checks, in order:
//   1. every file in blobs/sha256/ is a regular file named by the sha256 of its content (all are
//      rehashed, in parallel); a mismatching, non-regular or wrongly named one is a problem —
//      with repair it is moved to quarantine/ (never deleted: it is evidence);
//   2. every action record parses and names only blobs that exist and are sound — with repair a
//      bad record is removed (the step rebuilds);
//   2b. every block map (block_map.hpp) parses and tiles its blob, which exists and is sound —
//      with repair a bad map is removed (the next rebuild compresses those blocks again);
//   2c. every listing (listings.hpp) is whole and of a blob that exists and is sound — with
//      repair a bad one is removed (the next build reads that layer again);
//   3. every blob the refs need (ref_blobs) exists and is sound — reported only: the image must
//      be rebuilt or pulled again. A ref whose manifest is missing doesn't stop the others';
//   4. stale temps (gc.hpp sweep_temps) are counted — with repair, removed. Temps are what any
//      killed writer leaves: they do not make the store unclean.
// A store left by a SIGKILL at any moment verifies clean (writes are temp + rename).
//
// Without repair nothing changes and the store lock is taken shared (builds may run); with
// repair it is taken exclusively.

#include "cache/blob_store.hpp"
#include "cache/gc.hpp"
#include "cache/lock.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace factory::cache {

// The blobs the refs need, as verify checks them. Unlike RootBlobs (all or nothing, for
// prune), it walks on past what can't be read: `blobs` holds every blob reachable from every ref,
// a missing or corrupt manifest or index included (verify reports it), and `problems` one line per
// ref that can't be walked whole for any other reason (a manifest that is there but doesn't
// parse).
struct RefBlobs {
    std::vector<std::string> blobs;
    std::vector<std::string> problems;
};
using ListRefBlobs = std::function<RefBlobs()>;

struct VerifyOptions {
    bool repair = false;
    unsigned threads = 0; // rehashing threads; 0 = one per core
    LockWait wait;
};

struct VerifyReport {
    std::uint64_t blobs_checked = 0, records_checked = 0, roots_checked = 0;
    std::uint64_t block_maps_checked = 0, listings_checked = 0;
    std::vector<std::string> corrupt_blobs;      // hex (or file name) of bad files in blobs/sha256
    std::vector<std::string> bad_records;        // keys of unreadable records or naming bad blobs
    std::vector<std::string> missing_root_blobs; // hex of blobs the refs need that are gone or bad
    std::vector<std::string> bad_block_maps;     // blob hex of maps that are unreadable or wrong
    std::vector<std::string> bad_listings;       // blob hex of listings unreadable or orphaned
    std::vector<std::string> problems;           // one line per problem, for printing
    std::vector<std::string> repairs;            // one line per change made (repair only)
    std::uint64_t stale_temps = 0;               // found; removed when repairing
    std::uint64_t stale_temp_bytes = 0;

    // Nothing wrong (stale temps aside).
    bool clean() const noexcept { return problems.empty(); }
    // Some problem is one --repair fixes (a corrupt blob, a bad record, block map or listing);
    // a missing blob a ref needs is not: that image must be rebuilt or pulled again.
    bool repairable() const noexcept {
        return !corrupt_blobs.empty() || !bad_records.empty() || !bad_block_maps.empty() ||
               !bad_listings.empty();
    }
};

// Throws Error only for a busy store past options.wait.timeout or an I/O error while repairing;
// a ref_blobs that throws becomes a problem in the report. An empty ref_blobs skips step 3.
VerifyReport verify(const fs::path& root, BlobStore& blobs, const ListRefBlobs& ref_blobs,
                    const VerifyOptions& options = {});

} // namespace factory::cache
