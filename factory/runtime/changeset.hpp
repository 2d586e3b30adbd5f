#pragma once
// An overlay upper directory → the entries of a layer (DESIGN.md "Running steps and shells";
// image-spec layer.md "Whiteouts"; moby/go-archive archive_linux.go does the same conversion):
//
//   character device 0/0 NAME          → `.wh.NAME`: empty regular file, mode 0644, uid/gid 0
//   directory with trusted.overlay.opaque=y → the directory + `DIR/.wh..wh..opq` (the same)
//     (user.overlay.opaque=y when the overlay was mounted with userxattr: rootless)
//   trusted.overlay.* / user.overlay.* xattrs → dropped
//   files, directories, symlinks       → themselves, with their real mode, uid, gid and xattrs
//                                        (a RUN step's ownership and capabilities are meant)
//   hardlinks inside the upper dir     → the first path (canonical order) is a file, the
//                                        others hardlinks to it (found by inode)
//   other devices, FIFOs, sockets      → skipped and reported (a layer::Entry can't hold them)
//
// File content is not read here: each file entry's `source` is its path in the upper dir and
// the layer writer streams it. Mtimes are not recorded (the writer sets every mtime to the
// epoch). Then the normalization of docs/runtime.md "What a RUN step leaves out" drops the
// noise that makes builds differ for nothing.

#include <filesystem>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "factory/layer/entry.hpp"
#include "factory/runtime/overlay.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

namespace fs = std::filesystem;

struct NormalizeOptions {
    // Drop the known noise (logs, caches, machine-id content, /run, /tmp …): see
    // docs/runtime.md. Off: the upper dir as it is.
    bool drop_noise = true;
    // Paths (relative, no leading '/') that were mount targets of the run: an empty regular
    // file or an empty directory there is the runtime's mount point, not the step's work, and
    // is dropped. Rootfs::stub_paths() gives them.
    std::vector<std::string> mount_stubs;
    // Drop xattrs the host's security modules put on every file (security.selinux,
    // security.ima, security.evm): they depend on the host, not on the recipe.
    bool drop_host_xattrs = true;
    // Which xattrs carry overlayfs's marks in this upper directory: trusted.overlay.* or, when
    // the overlay was mounted with userxattr (rootless), user.overlay.* (overlay.hpp).
    OverlayXattrs overlay_xattrs = OverlayXattrs::automatic;
    // The image's epoch, when set: Java's trust store (java_keystore.hpp) is written with it
    // as every entry's date instead of the time the step ran.
    std::optional<std::int64_t> epoch;
    // Told about every entry skipped because a layer can't hold it (path, reason).
    std::function<void(const std::string& path, const std::string& why)> on_skip;
};

// Walks `upper` (never following symlinks) and returns its entries, checked and in canonical
// order (layer::sort_entries). Errors: an unreadable directory, a metacopy or redirect upper
// (overlay mounted without metacopy=off/redirect_dir=off), an entry layer::check_entry refuses.
Result<std::vector<layer::Entry>> diff_upper(const fs::path& upper,
                                             const NormalizeOptions& options);

// True if `path` (relative) is noise the normalization drops (exposed for tests and docs).
bool is_noise(std::string_view path);

} // namespace factory::runtime
