#pragma once
// What `factory diff` and `factory inspect --files` accept as an image: a store ref
// (NAME[:TAG], sha256:DIGEST), a recipe file (built into the store first), or a transport:
// oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] (imported into the
// store, blobs verified) or docker://HOST/REPO[:TAG][@DIGEST] (pulled into the store). Each
// source ends as a manifest in the store, so every reader goes through the same store blobs.

#include <string>

#include "factory/builder/builder.hpp"
#include "factory/oci/layout.hpp"

namespace factory::cli {

struct ImageSource {
    oci::Descriptor manifest;
    std::string name; // what the user gave, for messages
};

// Throws Error: an image the store does not have (ExitCode::usage: "no image 'REF' in the
// store ROOT …", as Layout::resolve reads REF), a failing import, pull or build.
ImageSource resolve_image_source(const std::string& spec, oci::Layout& store,
                                 const builder::BuildOptions& options);

} // namespace factory::cli
