#pragma once
// Writing an image as `docker save` of Docker 25+ does (moby image/tarexport/save.go): an OCI
// layout (oci-layout, index.json, blobs/sha256/*) plus the legacy manifest.json and repositories,
// so `docker load` (both image stores), `podman load` and skopeo's docker-archive: and
// oci-archive: transports all read it. docs/oci.md "docker-archive" lists the exact files.

#include <filesystem>
#include <string>

#include "factory/oci/layout.hpp"

namespace factory::exporter {

namespace fs = std::filesystem;

// reference: NAME[:TAG], normalized as Docker does (hello → docker.io/library/hello:latest).
// Deterministic, written atomically. Throws Error (an invalid reference is a usage error).
void export_docker_archive(const oci::Layout& store, const oci::Descriptor& image,
                           const fs::path& file, const std::string& reference);

} // namespace factory::exporter
