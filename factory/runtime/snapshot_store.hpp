#pragma once
// Unpacked layers, ready to be overlay lower directories (DESIGN.md "The store"):
//
//   ROOT/snapshots/<diff_id hex>/      one layer in overlay form (applier.hpp ApplyMode::overlay)
//   ROOT/snapshots/.tmp-<hex>-<…>/     an unpack in progress (or left by a killed one)
//   ROOT/locks/snapshots/<hex>.lock    flock: one unpacker per layer
//
// A snapshot directory exists under its final name only once complete: it is unpacked into a
// temp directory beside it, the uncompressed stream is checked against the diff_id while it is
// applied, the file system is synced, and then the directory is renamed into place. Nothing
// writes into a snapshot afterwards (overlayfs never writes to lower directories), so snapshots
// are shared by every build and shell. ROOT/snapshots is mode 0700: setuid files inside are not
// reachable by other users (umoci #181).

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cache/blob_store.hpp"
#include "factory/oci/descriptor.hpp"
#include "factory/runtime/applier.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

namespace fs = std::filesystem;

// What ensure() needs to know of a layer blob.
struct LayerBlob {
    std::string digest_hex; // the blob's sha256, 64 lower-case hex digits (its store name)
    std::string media_type; // decides the decompression (tar, +gzip, +zstd)
};

struct SnapshotOptions {
    ApplyLimits limits;
    // syncfs before publishing: a snapshot that survives a crash is complete. Off only in tests
    // and benchmarks.
    bool sync = true;
    // Called once before waiting for another process that is unpacking the same layer.
    std::function<void(const std::string& diff_id)> on_wait;
    // Told about what an unpack had to leave out (device nodes, rootless); unset: printed on
    // stderr as "factory: warning: …", one line per layer.
    std::function<void(const std::string& message)> on_warning;
};

class SnapshotStore {
  public:
    // store_root: the store (ROOT above); blobs: where layer blobs are read from.
    SnapshotStore(fs::path store_root, cache::BlobStore& blobs, SnapshotOptions options = {});

    // ROOT/snapshots/<hex> for a diff_id "sha256:<hex>" (or a bare hex). Throws Error if the
    // diff_id is not a sha256 digest.
    fs::path path(std::string_view diff_id) const;
    // True if the snapshot is complete (present under its final name).
    bool has(std::string_view diff_id) const;

    // The snapshot of a layer, unpacked from its blob on first use. Concurrent calls for the
    // same diff_id, from threads or processes, unpack it once: the others wait on the lock and
    // reuse it. Errors: a missing or unreadable blob, a layer the applier refuses (its message),
    // a content whose uncompressed digest is not diff_id ("… hashes to sha256:X, but its diff_id
    // is sha256:Y"), an I/O error. A failed unpack leaves nothing behind.
    Result<fs::path> ensure(const std::string& diff_id, const LayerBlob& layer);
    Result<fs::path> ensure(const std::string& diff_id, const oci::Descriptor& layer);

    // Statistics of the last unpack done by this object (for progress and benchmarks).
    const ApplyStats& last_stats() const noexcept { return last_stats_; }

  private:
    Result<fs::path> unpack(const std::string& hex, const LayerBlob& layer, const fs::path& dest);
    void sweep_temps(const std::string& hex) const;

    fs::path root_;
    fs::path dir_;
    cache::BlobStore* blobs_;
    SnapshotOptions options_;
    ApplyStats last_stats_;
};

// `factory cache prune`: removes every complete snapshot whose hex is not in `keep` (each is a
// cache of its layer blob: what is removed is unpacked again when needed). Call it under
// StoreLock::maintenance: builds, `factory run` and starting shell environments hold the store
// lock shared while they use snapshots, and running environments' lowers must be in `keep`.
// Returns the removed (or, with dry_run, removable) hexes with their sizes. Never throws: a
// snapshot it can't remove is left alone.
std::vector<std::pair<std::string, std::uint64_t>>
prune_snapshots(const fs::path& store_root, const std::unordered_set<std::string>& keep,
                bool dry_run);

} // namespace factory::runtime
