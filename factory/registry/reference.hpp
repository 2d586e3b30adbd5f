#pragma once
// Registry references as skopeo's docker:// transport and the recipe grammar spell them:
// [docker://]HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]. A first component without '.' or ':'
// that is not "localhost" is a Docker Hub repository (docker.io, "library/" for one component).

#include <string>
#include <string_view>

#include "factory/util/error.hpp"

namespace factory::registry {

struct Reference {
    std::string host;       // "127.0.0.1:5000", "ghcr.io", "docker.io"
    std::string repository; // "team/base", "library/debian"
    std::string tag;        // "" when only a digest was given
    std::string digest;     // "sha256:<64 hex>" or ""

    // What a request names: the digest when there is one, else the tag ("latest" by default).
    std::string reference() const { return digest.empty() ? tag : digest; }
    // HOST/REPOSITORY[:TAG][@DIGEST], as parsed (the store's ref name of a pulled image).
    std::string str() const;
    // The host the API is served from (docker.io → registry-1.docker.io).
    std::string api_host() const;
};

// Parses a reference; "docker://" is optional. No tag and no digest means ":latest". Errors quote
// the input and say which part is wrong (host, repository component, tag, digest).
Result<Reference> parse_reference(std::string_view text);

// True if text looks like a registry reference rather than a store name: it starts with
// "docker://" or its first '/'-separated component is a host (has '.' or ':', or is localhost).
bool looks_like_reference(std::string_view text);

} // namespace factory::registry
