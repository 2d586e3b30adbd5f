#pragma once
// ext4:FILE — the flattened image as an ext4 file system, made by e2fsprogs without root and
// without a mount (docs/ami-bake.md "ext4"):
//   1. the layers are applied into a staging directory beside FILE (runtime/applier.hpp);
//   2. `mke2fs -d` copies that tree into a new file system whose every parameter is fixed:
//      our own mke2fs.conf (features chosen here, not the host's), block and inode sizes, the
//      inode count, UUID and directory hash seed derived from the image digest, lazy
//      initialisation off, E2FSPROGS_FAKE_TIME = the image's epoch, LC_ALL=C (mke2fs sorts
//      directory entries with the locale's collation);
//   3. one `debugfs -w` script then sets what the staging tree could not carry or carries from
//      the host: every inode's owner, mode and xattrs as the image has them (a caller who can't
//      chown, a host's SELinux label), device nodes a user namespace can't mknod, and every
//      atime, ctime and crtime (taken from the host by e2fsprogs 1.47.0) set to the epoch,
//      every mtime to the layer's.
// The same image gives the same bytes, whoever exports it, wherever, with any umask or TZ.

#include <filesystem>
#include <functional>

#include "factory/export/disk_manifest.hpp"
#include "factory/export/image_files.hpp"
#include "factory/export/target.hpp"
#include "factory/oci/layout.hpp"

namespace factory::exporter {

struct Ext4Image {
    std::uint64_t size = 0;          // bytes of the file system
    std::uint64_t content_bytes = 0; // bytes of the image's files
    std::uint64_t files = 0;
    std::string uuid, label;
    std::optional<std::vector<Package>> packages;
};

// Called with the staging tree, the image's files and the file system's size once the tree is
// on disk and before the file system is made (raw: to take the kernel and the bootloader from
// it, make the disk around it). Returns the offset in `out` where the file system goes: `out`
// then exists already (the disk), and mke2fs and debugfs write inside it at that offset, so
// the file system is never copied.
using StagingVisitor = std::function<std::uint64_t(const std::filesystem::path& staging,
                                                   const ImageFiles& files, std::uint64_t size)>;

// Makes the file system in `out` (which must not exist, unless `visit` made it and gave an
// offset), staging in `work` (an empty directory on the same file system as `out`). Throws
// Error: a missing mke2fs or debugfs, an image that doesn't fit options.size, a failing tool
// (its message quoted).
Ext4Image make_ext4(const oci::Layout& store, const oci::Descriptor& image,
                    const std::filesystem::path& out, const std::filesystem::path& work,
                    const DiskOptions& options, const StagingVisitor& visit = {});

// ext4:FILE: make_ext4 in a temp directory beside FILE, then FILE and FILE.json renamed into
// place; a failure leaves neither. Throws Error prefixed with "cannot export to ext4:FILE: ".
void export_ext4(const oci::Layout& store, const oci::Descriptor& image,
                 const std::filesystem::path& file, const DiskOptions& options);

// The default size of the file system for `files` (docs/cli.md "ext4:FILE"): the blocks its
// content needs, plus 20 %, plus the inode tables, plus 64 MiB for the journal and metadata,
// rounded up to a MiB.
std::uint64_t default_ext4_size(const ImageFiles& files);

// The inode count given to mke2fs: the entries plus a quarter, at least 4096.
std::uint64_t ext4_inode_count(const ImageFiles& files);

// Writes `data` into `dir/name` and fsyncs it. Throws Error.
void write_synced(const std::filesystem::path& file, std::string_view data);

// Renames the finished output and its FILE.json from the temp directory into place (JSON
// last; the output is removed again if that fails). Throws Error.
void publish(const std::filesystem::path& temp_out, const std::filesystem::path& temp_json,
             const std::filesystem::path& file);

} // namespace factory::exporter
