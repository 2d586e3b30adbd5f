#pragma once
// Bringing a base image into the store from an `oci:DIR[:TAG]` layout or an
// `oci-archive:FILE[:TAG]` tar of one. Every blob the chosen manifest reaches (the manifest, its
// config and its layers) is verified against its digest and size and copied into `dest`; layers
// are kept byte for byte (never recompressed). Nothing else from the source enters the store.
//
// Archives are read with libarchive's read side only (never archive_write_disk) and stream
// straight into the store's temp directory: only `oci-layout`, `index.json`,
// `blobs/sha256/<64 hex>` and their directories are accepted (and Docker's `manifest.json` and
// `repositories`, which are skipped); `..`, absolute names, links, devices, sparse files,
// duplicates and entries over the caps are refused (docs/oci.md "Importing").

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "cache/blob_store.hpp"
#include "factory/oci/descriptor.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/manifest.hpp"

namespace factory::oci {

namespace fs = std::filesystem;

struct ImportedImage {
    Descriptor manifest_desc; // the image manifest (an index was descended for the platform)
    Manifest manifest;
    ImageConfig config;
};

struct ImportLimits {
    std::uint64_t max_json = 4u << 20;      // oci-layout, index.json, manifests, configs
    std::uint64_t max_blob = 64ull << 30;   // any one blob
    std::uint64_t max_total = 256ull << 30; // all the bytes of an archive
    std::size_t max_entries = 100000;       // archive entries
};

// tag: a ref.name (or io.containerd.image.name) in the source's index.json; "" picks the only
// image; "sha256:…" a manifest by digest. See Layout::resolve.
Result<ImportedImage> import_oci_archive(const fs::path& archive, std::string_view tag,
                                         cache::BlobStore& dest,
                                         const Platform& platform = host_platform(),
                                         const ImportLimits& limits = {});
// A docker-archive (`docker save`, `podman save`, skopeo's docker-archive:, factory's own):
// tag is NAME[:TAG] as RepoTags or io.containerd.image.name hold it, normalized as Docker does
// ("hello" is docker.io/library/hello:latest); "" picks the only image. With Docker 25's OCI
// layout inside, its manifest is kept; a legacy archive (manifest.json, <id>.json,
// <id>/layer.tar) becomes an OCI manifest of its config and layers, each layer's media type
// read from its bytes.
Result<ImportedImage> import_docker_archive(const fs::path& archive, std::string_view tag,
                                            cache::BlobStore& dest,
                                            const Platform& platform = host_platform(),
                                            const ImportLimits& limits = {});
Result<ImportedImage> import_oci_layout(const fs::path& dir, std::string_view tag,
                                        cache::BlobStore& dest,
                                        const Platform& platform = host_platform(),
                                        const ImportLimits& limits = {});

} // namespace factory::oci
