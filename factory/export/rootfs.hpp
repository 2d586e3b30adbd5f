#pragma once
// A flattened root file system of an image, for an AMI bake or any tool that wants a plain
// tree: every layer applied in order by the safe applier (runtime/applier.hpp), whiteouts
// resolved, each layer checked against its digest and diff_id on the way.

#include <filesystem>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/layout.hpp"

namespace factory::exporter {

// Applies the image's layers, in order, into `root` (an existing empty directory), with the
// image's owners when this process may chown (root, or root of the rootless namespace) and its
// device nodes when it may mknod. Returns the image's config. Throws Error.
oci::ImageConfig flatten_image(const oci::Layout& store, const oci::Descriptor& image,
                               const std::filesystem::path& root);

// Writes the tree into `dir`, which must not exist or be empty. It is built beside `dir` and
// renamed into place, so a failure leaves nothing. Throws Error.
void export_rootfs_dir(const oci::Layout& store, const oci::Descriptor& image,
                       const std::filesystem::path& dir);

// The same tree as one tar (PAX, sorted, every mtime the image's epoch: the config's `created`,
// numeric owners), written atomically. Throws Error.
void export_rootfs_tar(const oci::Layout& store, const oci::Descriptor& image,
                       const std::filesystem::path& file);

} // namespace factory::exporter
