#pragma once
// The export entry point: an image of the store to an output target (target.hpp).

#include <string_view>

#include "factory/export/target.hpp"
#include "factory/oci/layout.hpp"

namespace factory::exporter {

// image_name: the image's store name "name:tag"; it supplies the default TAG (oci, oci-archive)
// or NAME:TAG (docker-archive) when the target names none. Rootless, the output is chowned to
// the caller (runtime::give_to_caller), except a rootfs directory, whose files keep the
// image's owners. Throws Error.
void export_image(const oci::Layout& store, const oci::Descriptor& image, const Target& target,
                  std::string_view image_name);

} // namespace factory::exporter
