#pragma once
// Docker-style image references (distribution/reference): the normalization `docker save` and
// `docker load` apply, so that a docker-archive names the image as Docker would.

#include <string>
#include <string_view>

#include "factory/util/error.hpp"

namespace factory::oci {

struct DockerReference {
    std::string domain; // "docker.io", "localhost:5000", "ghcr.io"
    std::string path;   // "library/hello", "ns/app"
    std::string tag;    // "latest" when none was given

    // docker.io/library/hello:latest (containerd's io.containerd.image.name)
    std::string full() const { return domain + "/" + path + ":" + tag; }
    // hello, ns/app, ghcr.io/ns/app (reference.FamiliarName)
    std::string familiar_name() const;
    // hello:latest (reference.FamiliarString)
    std::string familiar() const { return familiar_name() + ":" + tag; }
};

// Parses "NAME[:TAG]" with Docker's rules: a first component without '.' or ':' that is not
// "localhost" is a Docker Hub path; a bare name gets "library/"; no tag means "latest". Rejects
// upper case in the path, digests (@sha256:…), 64-hex names, bad tags and names over 255 bytes.
Result<DockerReference> parse_docker_reference(std::string_view text);

} // namespace factory::oci
