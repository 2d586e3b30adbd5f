#pragma once
// The root file system of one run: an overlay of layer snapshots, a fresh upper directory that
// collects what the run changes, and — at the very bottom of the lower stack — a small "stubs"
// directory holding the mount points the run needs (/proc, /dev, /sys, /etc/hosts,
// /etc/resolv.conf, bind-mount targets).
//
// Why the stubs: a runtime creates a missing mount point in the root file system, which would
// land in the upper directory and so in the layer (an empty /etc/resolv.conf in every RUN layer
// of a scratch image, an /etc copy-up in every layer). As the lowest layer they exist in the
// merged view without ever being in the upper directory; being lowest, they never override an
// image's own files or directory attributes (overlayfs takes a directory's attributes from the
// topmost layer that has it). When an image hides a stub (a whiteout or an opaque /etc), the
// runtime does create the mount point in the upper directory; diff_upper drops it then
// (NormalizeOptions::mount_stubs = stub_paths()).
//
//   SCRATCH/upper   the run's changes → diff_upper()
//   SCRATCH/work    overlayfs's work directory
//   SCRATCH/stubs   the mount points
//   SCRATCH/merged  the mount: RunSpec::rootfs

#include <filesystem>
#include <string>
#include <vector>

#include "factory/runtime/bundle.hpp"
#include "factory/runtime/overlay.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

namespace fs = std::filesystem;

class Rootfs {
  public:
    // scratch: an empty (or absent) directory on the file system that will hold the upper
    // directory. lowers: snapshot directories, top layer first (none for scratch).
    // targets: mount_targets(spec) of the run(s) to come.
    static Result<Rootfs> create(const fs::path& scratch, const std::vector<fs::path>& lowers,
                                 const std::vector<MountTarget>& targets,
                                 const OverlayOptions& options = {});

    const fs::path& merged() const noexcept { return merged_; }
    fs::path upper() const { return scratch_ / "upper"; }
    // For NormalizeOptions::mount_stubs.
    const std::vector<std::string>& stub_paths() const noexcept { return stubs_; }
    const OverlayMount& mount() const noexcept { return mount_; }
    // Unmounts (also done by the destructor). The scratch directory stays: the caller reads
    // upper() and removes it.
    Result<void> unmount() { return mount_.unmount(); }
    // Leaves the overlay mounted when this object goes (OverlayMount::release).
    void release() noexcept { mount_.release(); }

  private:
    fs::path scratch_, merged_;
    std::vector<std::string> stubs_;
    OverlayMount mount_;
};

// Creates the stub tree for targets under dir (an empty directory we own): directories 0755,
// empty files 0644, all root-owned when running as root. Errors name the target.
Result<void> make_mount_stubs(const fs::path& dir, const std::vector<MountTarget>& targets);

} // namespace factory::runtime
