#pragma once
// A step's root file system: overlayfs with the layer snapshots as lower directories
// (DESIGN.md "Running steps and shells"; the kernel's Documentation/filesystems/overlayfs.rst).
//
// Options: redirect_dir=off and metacopy=off so that a renamed directory is copied up whole and
// a chmod copies the data too — the upper directory then holds complete files and plain
// directories, which is what diff_upper() turns into a layer (image-spec layer.md knows neither
// redirects nor metacopy); index=off (no hardlink index, the upper dir stays self-contained);
// xino=off (inode numbers are not rewritten); in a user namespace userxattr (its marks are
// user.overlay.* xattrs). Options the kernel doesn't know are dropped one
// by one (oldest kernels first lose xino, then metacopy, index, redirect_dir).
//
// mount(2) passes its options in one page (4096 bytes). With absolute paths a store under
// /home/user/.cache/factory fits about 50 layers; beyond that the lower directories are
// passed as /proc/self/fd/N of descriptors opened for the mount (17 bytes each: ~230 layers;
// overlayfs itself stops at 500).

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"

namespace factory::runtime {

namespace fs = std::filesystem;

// The xattr namespace of overlayfs's own marks (opaque directories, redirects, metacopy):
// "trusted.overlay." needs CAP_SYS_ADMIN in the initial user namespace; in any other (rootless
// factory) only "user.overlay." can be set, and the mount needs the `userxattr` option to use
// it. Snapshots, the mount and diff_upper must agree.
enum class OverlayXattrs {
    automatic, // user in a user namespace, else trusted
    trusted,
    user,
};
// automatic resolved for this process (never returns automatic).
OverlayXattrs resolve(OverlayXattrs x);
// The full name of one of overlayfs's xattrs: ("opaque") → "trusted.overlay.opaque".
std::string overlay_xattr(OverlayXattrs x, std::string_view name);

struct OverlayOptions {
    bool nodev = true;     // MS_NODEV: device nodes in the image can't be opened
    bool readonly = false; // no upper directory: a read-only view of the lowers
    OverlayXattrs xattrs = OverlayXattrs::automatic; // user: adds `userxattr`
};

class OverlayMount {
  public:
    OverlayMount() = default;
    OverlayMount(OverlayMount&& other) noexcept;
    OverlayMount& operator=(OverlayMount&& other) noexcept;
    OverlayMount(const OverlayMount&) = delete;
    OverlayMount& operator=(const OverlayMount&) = delete;
    ~OverlayMount(); // unmount(), errors ignored

    // Mounts overlayfs on `target` (an existing directory). lowers: top layer first. Zero
    // lowers (a scratch base) use an empty directory `work`/../.empty-lower. upper and work
    // must be empty directories on the same file system (unused when options.readonly).
    // Errors name the mount options and errno: "mount overlay on /x (lowerdir=…): Invalid
    // argument".
    static Result<OverlayMount> mount(const std::vector<fs::path>& lowers, const fs::path& upper,
                                      const fs::path& work, const fs::path& target,
                                      const OverlayOptions& options = {});

    // umount2(MNT_DETACH): the mount goes away when its last user (a container still
    // running in it) does. A no-op if not mounted.
    Result<void> unmount();

    // Gives up ownership: the mount stays after this object is gone (a shell environment's
    // root outlives the process that made it; whoever ends the environment unmounts it).
    void release() noexcept { target_.clear(); }

    bool mounted() const noexcept { return !target_.empty(); }
    const fs::path& target() const noexcept { return target_; }
    // The option string given to the kernel (for logs and tests).
    const std::string& options() const noexcept { return options_; }

  private:
    fs::path target_;
    std::string options_;
};

} // namespace factory::runtime
