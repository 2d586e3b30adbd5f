#include "factory/runtime/snapshot_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "cache/lock.hpp"
#include "factory/runtime/rootless.hpp"
#include "factory/util/files.hpp"
#include "factory/util/progress.hpp"

namespace factory::runtime {

namespace {

// "sha256:<hex>" or "<hex>" → hex; empty if neither.
std::string diff_hex(std::string_view diff_id) {
    if (diff_id.starts_with("sha256:")) diff_id.remove_prefix(7);
    return cache::is_sha256_hex(diff_id) ? std::string(diff_id) : std::string();
}

// Removes a directory tree that may hold anything a layer can (read-only dirs, odd names),
// without following symlinks.
void remove_tree(const fs::path& dir) {
    Fd parent(::open(dir.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (parent) (void)remove_at(parent.get(), dir.filename().string());
}

} // namespace

SnapshotStore::SnapshotStore(fs::path store_root, cache::BlobStore& blobs, SnapshotOptions options)
    : root_(std::move(store_root)), dir_(root_ / "snapshots"), blobs_(&blobs),
      options_(std::move(options)) {}

fs::path SnapshotStore::path(std::string_view diff_id) const {
    auto hex = diff_hex(diff_id);
    if (hex.empty()) throw Error("invalid diff_id \"" + std::string(diff_id) + "\"");
    return dir_ / hex;
}

bool SnapshotStore::has(std::string_view diff_id) const {
    auto hex = diff_hex(diff_id);
    struct stat st {};
    return !hex.empty() && ::lstat((dir_ / hex).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<fs::path> SnapshotStore::ensure(const std::string& diff_id, const oci::Descriptor& layer) {
    auto hex = layer.sha256_hex();
    if (!hex) return Unexpected("layer " + layer.digest + ": " + hex.error());
    return ensure(diff_id, LayerBlob{*hex, layer.media_type});
}

Result<fs::path> SnapshotStore::ensure(const std::string& diff_id, const LayerBlob& layer) {
    auto hex = diff_hex(diff_id);
    if (hex.empty()) return Unexpected("invalid diff_id \"" + diff_id + "\"");
    if (!cache::is_sha256_hex(layer.digest_hex))
        return Unexpected("invalid layer digest \"" + layer.digest_hex + "\"");
    fs::path dest = dir_ / hex;
    if (has(hex)) return dest; // published snapshots are complete and immutable

    try {
        std::error_code ec;
        if (!fs::exists(dir_, ec)) {
            fs::create_directories(dir_, ec);
            ::chmod(dir_.c_str(), 0700);
        }
        // The waiter path: another process (or thread) is unpacking this layer; when its lock
        // is released the snapshot is either published or the unpack failed and we try.
        cache::LockWait wait;
        if (options_.on_wait) wait.on_wait = [&] { options_.on_wait("sha256:" + hex); };
        auto lock =
            cache::FileLock::exclusive(root_ / "locks" / "snapshots" / (hex + ".lock"), wait);
        if (has(hex)) return dest;
        sweep_temps(hex);
        return unpack(hex, layer, dest);
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
}

// Under the layer's lock, any temp of that layer belongs to a dead unpacker.
void SnapshotStore::sweep_temps(const std::string& hex) const {
    std::error_code ec;
    std::string prefix = std::string(temp_prefix) + hex + "-";
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().starts_with(prefix)) remove_tree(it->path());
}

Result<fs::path> SnapshotStore::unpack(const std::string& hex, const LayerBlob& layer,
                                       const fs::path& dest) {
    auto compression = compression_of_media_type(layer.media_type);
    if (!compression)
        return Unexpected("layer sha256:" + layer.digest_hex + ": unsupported media type \"" +
                          layer.media_type + "\"");
    if (!blobs_->has(layer.digest_hex))
        return Unexpected("layer sha256:" + layer.digest_hex + " is not in the store");

    fs::path temp = dir_ / (std::string(temp_prefix) + hex + "-" + unique_suffix());
    if (::mkdir(temp.c_str(), 0700) != 0)
        return Unexpected("cannot create " + temp.string() + ": " + errno_string(errno));
    struct Cleanup {
        fs::path path;
        ~Cleanup() {
            if (!path.empty()) remove_tree(path);
        }
    } cleanup{temp};

    Fd root(::open(temp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root) return Unexpected("cannot open " + temp.string() + ": " + errno_string(errno));
    ApplyOptions opts;
    opts.mode = ApplyMode::overlay;
    opts.compression = compression;
    opts.limits = options_.limits;
    opts.owners = Owners::automatic;
    opts.expected_diff_id = "sha256:" + hex;
    opts.expected_digest = "sha256:" + layer.digest_hex;
    auto stats = apply_layer(blobs_->path(layer.digest_hex), root.get(), opts);
    if (!stats) return Unexpected(stats.error());
    // The root of a layer without a "./" entry: what a directory would get.
    if (!stats->root_entry) ::fchmod(root.get(), 0755);
    if (options_.sync && ::syncfs(root.get()) != 0)
        return Unexpected("cannot sync " + temp.string() + ": " + errno_string(errno));
    if (::rename(temp.c_str(), dest.c_str()) != 0)
        return Unexpected("cannot rename " + temp.string() + " to " + dest.string() + ": " +
                          errno_string(errno));
    cleanup.path.clear();
    fsync_dir(dir_);
    // Rootless: the kernel refuses mknod of real devices in a user namespace. Images rarely
    // carry any (a container's /dev is the runtime's), so they are left out with a warning
    // rather than refusing the image.
    if (stats->skipped_devices > 0 && in_user_namespace()) {
        std::string msg = "layer sha256:" + layer.digest_hex + ": " +
                          std::to_string(stats->skipped_devices) +
                          " device node(s) left out (no mknod in a user namespace: rootless)";
        if (options_.on_warning)
            options_.on_warning(msg);
        else
            warn(msg);
    }
    last_stats_ = std::move(*stats);
    return dest;
}

std::vector<std::pair<std::string, std::uint64_t>>
prune_snapshots(const fs::path& store_root, const std::unordered_set<std::string>& keep,
                bool dry_run) {
    std::vector<std::pair<std::string, std::uint64_t>> removed;
    fs::path dir = store_root / "snapshots";
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        auto hex = it->path().filename().string();
        if (!cache::is_sha256_hex(hex) || keep.count(hex)) continue;
        std::uint64_t bytes = 0;
        std::error_code walk;
        for (fs::recursive_directory_iterator f(it->path(), walk), last; !walk && f != last;
             f.increment(walk)) {
            struct stat st {};
            if (::lstat(f->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
                bytes += static_cast<std::uint64_t>(st.st_size);
        }
        if (!dry_run) {
            // Out of sight first (has() no longer sees it), then removed.
            fs::path gone = dir / (std::string(temp_prefix) + hex + "-gc-" + unique_suffix());
            if (::rename(it->path().c_str(), gone.c_str()) != 0) continue;
            remove_tree(gone);
        }
        removed.emplace_back(hex, bytes);
    }
    std::sort(removed.begin(), removed.end());
    return removed;
}

} // namespace factory::runtime
