#include "factory/export/export.hpp"
#include "factory/export/rootfs.hpp"

#include "factory/export/docker_archive.hpp"
#include "factory/export/ext4.hpp"
#include "factory/export/raw.hpp"
#include "factory/export/oci_export.hpp"
#include "factory/runtime/rootless.hpp"

namespace factory::exporter {

namespace {

// The tag of "name:tag" (a ':' after the last '/'), or "latest".
std::string tag_of(std::string_view name) {
    auto colon = name.rfind(':');
    auto slash = name.rfind('/');
    if (colon == std::string_view::npos || (slash != std::string_view::npos && colon < slash))
        return "latest";
    return std::string(name.substr(colon + 1));
}

void write_target(const oci::Layout& store, const oci::Descriptor& image, const Target& target,
                  std::string_view image_name) {
    switch (target.format) {
    case Format::oci_dir:
        export_oci_dir(store, image, target.path,
                       target.ref.empty() ? tag_of(image_name) : target.ref);
        return;
    case Format::oci_archive:
        export_oci_archive(store, image, target.path,
                           target.ref.empty() ? tag_of(image_name) : target.ref);
        return;
    case Format::docker_archive:
        export_docker_archive(store, image, target.path,
                              target.ref.empty() ? std::string(image_name) : target.ref);
        return;
    case Format::rootfs_dir:
        export_rootfs_dir(store, image, target.path);
        return;
    case Format::rootfs_tar:
        export_rootfs_tar(store, image, target.path);
        return;
    case Format::ext4:
        export_ext4(store, image, target.path, target.disk);
        return;
    case Format::raw:
        export_raw(store, image, target.path, target.disk);
        return;
    }
}

} // namespace

void export_image(const oci::Layout& store, const oci::Descriptor& image, const Target& target,
                  std::string_view image_name) {
    write_target(store, image, target, image_name);
    // Rootless: the output is the caller's file, not the namespace root's. A rootfs directory
    // keeps the image's owners (mapped into the subordinate range), as a root file system must.
    if (target.format != Format::rootfs_dir)
        value_or_throw(runtime::give_to_caller(target.path.string()));
    if (target.format == Format::ext4 || target.format == Format::raw)
        value_or_throw(runtime::give_to_caller(target.path.string() + ".json"));
}

} // namespace factory::exporter
