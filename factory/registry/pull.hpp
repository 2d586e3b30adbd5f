#pragma once
// Pulling an image from a registry into the store: the manifest (an index is descended to the
// platform's manifest), its config and its layers, every one verified against the digest asked
// for before it gets its name; blobs are streamed straight into the store's temp files, several
// at once, resumed with Range after a broken connection. The ref is written last, so an
// interrupted pull leaves no ref and no unverified blob.

#include <cstddef>
#include <optional>
#include <string>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/layout.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/registry/client.hpp"
#include "factory/registry/manifest_check.hpp"
#include "factory/registry/reference.hpp"

namespace factory::registry {

struct PullOptions {
    oci::Platform platform = oci::host_platform();
    std::size_t jobs = 4;         // blobs transferred at once
    Progress* progress = nullptr; // "pull" events per blob
    bool set_ref = true;          // name the image ref.str() in the store's index.json
};

struct PulledImage {
    oci::Descriptor manifest_desc; // the platform's image manifest, as stored
    oci::Manifest manifest;
    oci::ImageConfig config;
    std::string index_digest; // the index it was chosen from, or ""
    std::size_t blobs_fetched = 0;
    std::uint64_t bytes_fetched = 0;
};

// GET manifests/<reference>, checked (manifest_check.hpp). Throws Error.
CheckedManifest get_manifest(Client& client, const std::string& repository,
                             const std::string& reference, std::string_view expected_media_type);
// The same, nullopt when the registry answers 404 (one request where HEAD then GET is two).
std::optional<CheckedManifest> find_manifest(Client& client, const std::string& repository,
                                             const std::string& reference,
                                             std::string_view expected_media_type);

// HEAD manifests/<reference>: the registry's digest and media type, or nullopt on 404. Throws.
std::optional<oci::Descriptor> head_manifest(Client& client, const std::string& repository,
                                             const std::string& reference);

// Resolves ref to the platform's image manifest descriptor (one HEAD when the registry says the
// tag names a manifest, else the manifest and index are read). Throws Error.
oci::Descriptor resolve_manifest(Client& client, const Reference& ref,
                                 const oci::Platform& platform);

// Streams the blob d of repository into blobs (verified against its digest and size, resumed
// with Range); false, with no request, when blobs has it already. Throws Error.
bool fetch_blob_into(Client& client, const std::string& repository, const oci::Descriptor& d,
                     cache::BlobStore& blobs, Progress* progress = nullptr);

// Pulls ref into store. Throws Error (nothing is named in the store then).
PulledImage pull(Client& client, const Reference& ref, oci::Layout& store,
                 const PullOptions& options = {});

} // namespace factory::registry
