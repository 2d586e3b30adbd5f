#pragma once
// The safe layer applier (DESIGN.md "Layers, bit for bit", image-spec layer.md, and the
// bad-input corpus of research/oci-specs-security.md §6): a layer blob (tar, tar+gzip, tar+zstd)
// is read with libarchive's reader only — never archive_write_disk — and every entry is written
// inside the root by descriptor:
//   - parents are resolved inside the root (openat2 RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS, or
//     the component-wise walk of in_root.hpp); missing ones are made 0755;
//   - the final component is never followed: it is created with mkdirat, openat(O_CREAT|O_EXCL|
//     O_NOFOLLOW), symlinkat, linkat or mknodat; metadata is set by fd or AT_SYMLINK_NOFOLLOW;
//   - an existing entry is replaced: directory over directory merges the metadata, anything
//     else is removed (a directory recursively, by fd) and created again;
//   - directory mtimes are set last.
// docs/runtime.md lists every rule and cap.

#include <archive_entry.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "factory/layer/layer_writer.hpp"
#include "factory/runtime/in_root.hpp"
#include "factory/runtime/layer_stream.hpp"
#include "factory/runtime/overlay.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

enum class ApplyMode {
    // A plain root file system: whiteouts delete from what is already in the root (the lower
    // layers applied before), for flattening and export.
    rootfs,
    // One overlayfs lower directory holding this layer only: `.wh.NAME` becomes a character
    // device 0/0 named NAME, `.wh..wh..opq` the xattr trusted.overlay.opaque="y" on its
    // directory (the kernel's overlayfs.rst "whiteouts and opaque directories").
    overlay,
};

enum class Owners {
    automatic, // preserve the layer's uid/gid when running as root, else leave ours
    preserve,  // chown to the layer's uid/gid (an error without the privilege)
    ignore,    // keep the files owned by the caller
};

struct ApplyLimits {
    std::uint64_t max_entries = 1'000'000;
    std::uint64_t max_path_length = 4096;    // bytes, after "./" and "/" are stripped
    std::uint64_t max_depth = 1024;          // path components
    std::uint64_t max_xattr_bytes = 1 << 20; // names + values, per entry
    StreamLimits stream;                     // uncompressed bytes, compression ratio
};

struct ApplyOptions {
    ApplyMode mode = ApplyMode::rootfs;
    std::optional<layer::Compression> compression; // nullopt: sniff the magic bytes
    ApplyLimits limits;
    Owners owners = Owners::automatic;
    // Block and character devices are made only when this is true and the process may mknod
    // (root; in a user namespace mknod is refused: EPERM); otherwise they are skipped and
    // counted (ApplyStats::skipped_devices). FIFOs are always made; sockets never.
    bool devices = true;
    Resolver resolver = Resolver::automatic;
    // overlay mode: the opaque mark is trusted.overlay.opaque, or user.overlay.opaque for an
    // overlay mounted with userxattr (automatic: user in a user namespace, as OverlayMount).
    OverlayXattrs overlay_xattrs = OverlayXattrs::automatic;
    // When set ("sha256:<hex>"), apply_layer fails if the uncompressed stream hashes otherwise
    // (checked after the last entry: the caller must discard the root on any error).
    std::string expected_diff_id;
    std::string expected_digest; // likewise for the blob itself
    // When set: called with each entry's header before the entry is applied (it must not read
    // the entry's data); an error stops the layer with it. For a caller that wants the layer's
    // metadata from the same pass (export's file list for ext4:).
    std::function<Result<void>(archive_entry*)> observe;
};

struct ApplyStats {
    std::string diff_id; // "sha256:<hex>" of the uncompressed tar
    std::string digest;  // "sha256:<hex>" of the blob
    std::uint64_t compressed_bytes = 0, tar_bytes = 0, content_bytes = 0;
    std::uint64_t entries = 0, files = 0, dirs = 0, symlinks = 0, hardlinks = 0;
    std::uint64_t whiteouts = 0, opaque_dirs = 0, devices = 0, fifos = 0;
    std::uint64_t skipped_devices = 0, skipped_other = 0, skipped_xattrs = 0;
    bool root_entry = false; // the layer had a "./" entry (its metadata was set on the root)
};

// Applies the layer in `blob` to the directory root_dirfd (opened O_RDONLY|O_DIRECTORY).
// Returns statistics and both digests, or an error naming the blob and the entry ("layer X:
// entry \"a/b\": …"). On error the root holds a partial layer: the caller discards it. Nothing
// is ever created, changed or removed outside the root, whatever the layer holds.
Result<ApplyStats> apply_layer(const std::filesystem::path& blob, int root_dirfd,
                               const ApplyOptions& options);

// The media type's compression (tar, tar+gzip, tar+zstd, Docker's tar.gzip, the
// non-distributable variants); nullopt for anything else.
std::optional<layer::Compression> compression_of_media_type(std::string_view media_type);

} // namespace factory::runtime
