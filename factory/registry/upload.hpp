#pragma once
// Uploading one blob into a repository (distribution-spec "Pushing blobs"):
//   - a cross-repository mount first when candidate repositories are given (201: mounted; 202:
//     the registry opened an upload session instead, which is used);
//   - a blob of at most chunk_size bytes: one monolithic PUT <Location>?digest= (a new session
//     after a failed attempt);
//   - a larger one: PATCH chunks with Content-Range, then PUT ?digest= with no body. A chunk
//     that fails (broken connection, 5xx, 416) is followed by a GET of the upload URL, whose
//     Range says how many bytes the registry has; the upload goes on from there. Only when the
//     registry has forgotten the session (404) does it start again from byte 0.
// Retries back off as every registry request does (Client::Retry); the count and time bound
// start again after each chunk the registry accepts.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "factory/oci/descriptor.hpp"
#include "factory/registry/client.hpp"

namespace factory::registry {

// Blobs larger than this go in chunks of this size (--chunk-size). 128 MiB: most layers go in one
// request, the fastest way (docker-registry spends time on each chunk: with 32 MiB chunks a
// push of bench/registry.sh's image took 0.96x skopeo's time, in one PUT per blob 0.62x); a big
// one can resume after a failure, in parts above the 5 MiB minimum of S3-backed registries (ECR).
inline constexpr std::uint64_t default_chunk_size = 128u << 20;
// The smallest chunk size accepted.
inline constexpr std::uint64_t min_chunk_size = 64u << 10;

struct UploadOptions {
    std::uint64_t chunk_size = default_chunk_size;
    // Repositories of the same registry to mount the blob from, tried in order.
    std::vector<std::string> mount_from;
    // Called with each count of body bytes handed to the connection (progress).
    std::function<void(std::uint64_t)> on_sent;
};

struct UploadResult {
    bool mounted = false;         // mounted from mounted_from, nothing sent
    std::string mounted_from;     // the repository it was mounted from
    std::uint64_t bytes_sent = 0; // blob bytes sent, resent ones included
    int resumes = 0;              // times the upload went on from the registry's offset
    int restarts = 0;             // times it started again from byte 0
};

// Uploads the blob d (its bytes in fd) into repository. Throws Error.
UploadResult upload_blob(Client& client, const std::string& repository, const oci::Descriptor& d,
                         int fd, const UploadOptions& options = {});

// "0-499" or "bytes=0-499" (a Range header of an upload) → 500, the bytes the registry has;
// "0-0" → 0 (distribution's answer for an empty session). nullopt if malformed.
std::optional<std::uint64_t> upload_range_end(std::string_view range);

} // namespace factory::registry
