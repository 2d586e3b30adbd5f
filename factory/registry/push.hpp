#pragma once
// Pushing an image of the store to a registry (distribution-spec "Push"): each blob is skipped
// when a HEAD finds it, else mounted from another repository of the same registry when one is
// given or known to the store (blob_sources.hpp: where it was pulled from or pushed to; 201
// mounted, 202 an upload session to use instead), else uploaded (upload.hpp:
// one PUT for a small blob, resumable PATCH chunks for a large one). Manifests go last, child
// manifests before an index, each with its exact bytes and checked against the digest the
// registry reports; then the tags. When every tag already names the image (a HEAD each), nothing
// else is asked: the registry has the manifest, so it has its blobs.

#include <cstddef>
#include <string>
#include <vector>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/layout.hpp"
#include "factory/registry/client.hpp"
#include "factory/registry/reference.hpp"
#include "factory/registry/upload.hpp"

namespace factory::registry {

struct PushOptions {
    std::size_t jobs = 4;
    Progress* progress = nullptr;
    std::vector<std::string> extra_tags; // also tagged (--all-tags, a recipe's tags)
    std::string mount_from;              // a repository of the same registry to mount from
    // Also try to mount from the repositories the store knows have the blob (blob_sources.hpp).
    bool discover_mounts = true;
    std::uint64_t chunk_size = default_chunk_size; // larger blobs go in PATCH chunks
};

struct PushResult {
    std::string digest;             // the top manifest's (or index's) digest
    std::size_t blobs_uploaded = 0; // sent in full
    std::size_t blobs_mounted = 0;  // mounted from mount_from
    std::size_t blobs_present = 0;  // found by HEAD
    std::uint64_t bytes_uploaded = 0;
    std::uint64_t bytes_sent = 0;  // blob bytes sent, resent ones included
    std::size_t resumes = 0;       // chunked uploads that went on from the registry's offset
    bool manifest_present = false; // every manifest and tag was already there
};

// image: a manifest or index of store. dest: its tag (or digest, which must be image's).
// Throws Error.
PushResult push(Client& client, const oci::Layout& store, const oci::Descriptor& image,
                const Reference& dest, const PushOptions& options = {});

// One blob of store into repository, unless a HEAD finds it there: true if it was uploaded.
// Either way the blob is recorded as available there (blob_sources.hpp). Throws Error.
bool push_store_blob(Client& client, const oci::Layout& store, const std::string& repository,
                     const oci::Descriptor& blob);

// PUT manifests/<reference> with these exact bytes (skipped when a HEAD finds the same digest),
// checked against the digest the registry reports. Throws Error.
void put_manifest_bytes(Client& client, const std::string& repository, const std::string& reference,
                        const oci::Descriptor& manifest, const std::string& bytes);

} // namespace factory::registry
