#pragma once
// A build's base image by registry reference (recipe `base = "HOST/REPO:TAG"` or `…@sha256:…`):
// the reference is resolved to a manifest digest once, the image is pulled into the store when
// the policy says so, and the digest is what the build keys its steps on.

#include <optional>
#include <string>

#include "factory/oci/layout.hpp"
#include "factory/registry/client.hpp"

namespace factory::registry {

// When a build asks the registry (`--pull`).
enum class PullPolicy {
    never,   // the store only: the reference must have been pulled (or built) before
    missing, // a tag is resolved with one request (a moved tag rebuilds); blobs only if absent;
             // a digest already in the store costs no request at all
    always,  // the manifest is read from the registry every build, even for a digest
};

// Parses "never|missing|always"; throws a usage Error otherwise.
PullPolicy parse_pull_policy(const std::string& text);

struct BaseOptions {
    PullPolicy policy = PullPolicy::missing;
    ClientOptions client; // TLS, retries, progress
};

// Resolves `reference` for `platform` and makes sure the image is in `store` under the ref name
// HOST/REPO[:TAG][@DIGEST]; returns the image manifest's descriptor (its digest is the cache key).
// Progress gets a "base" event "REFERENCE → sha256:…". Throws Error (messages name the reference).
oci::Descriptor resolve_and_pull(const std::string& reference, oci::Layout& store,
                                 const oci::Platform& platform, const BaseOptions& options);

// What `reference`'s tag names in the registry now, for `platform` (one request, nothing
// pulled); nullopt for a reference by digest, which can't move. Throws Error.
std::optional<oci::Descriptor> peek_base(const std::string& reference,
                                         const oci::Platform& platform,
                                         const ClientOptions& options);

} // namespace factory::registry
