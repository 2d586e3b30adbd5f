#pragma once
// Writing an image from the store as an OCI layout directory or an OCI archive (a tar of one).

#include <filesystem>
#include <string>
#include <vector>

#include "factory/oci/layout.hpp"

namespace factory::exporter {

namespace fs = std::filesystem;

// Every blob of the image (manifest or index) in store, referenced before referrer, after
// checking that each one is present with the size its descriptor says. Throws Error.
std::vector<oci::Descriptor> image_blobs(const oci::Layout& store, const oci::Descriptor& image);

// The descriptor an output's index.json lists for the image: mediaType, digest, size, platform
// (the store's annotations are not carried over).
oci::Descriptor output_descriptor(const oci::Descriptor& image);

// Creates or updates the layout at dir and names the image `tag` (required) (ref.name = tag, as
// skopeo writes it). Blobs are hard-linked from the store when on the same file system, else copied
// and verified. A dir that exists, is not empty and is not a layout is refused. index.json is
// replaced last and atomically, so a failure leaves any previous content readable. Throws Error.
void export_oci_dir(const oci::Layout& store, const oci::Descriptor& image, const fs::path& dir,
                    const std::string& tag);

// Writes a deterministic tar of a layout holding only this image (tar_writer.hpp), named `tag`
// ("" = no ref.name), atomically: file appears complete or not at all. Throws Error.
void export_oci_archive(const oci::Layout& store, const oci::Descriptor& image,
                        const fs::path& file, const std::string& tag);

} // namespace factory::exporter
