#pragma once
// Where the store's blobs are known to be on registries: for each blob pulled from or pushed to
// a repository (a registry cache's blobs too), a line "HOST REPOSITORY" in
// STORE/registry-sources/<hex>. A push asks it for other repositories of the same registry to
// mount a blob from (a cross-repository mount costs one request instead of the upload). It is a
// hint: a stale line costs one mount attempt that the registry answers with an upload session,
// nothing else; losing it loses nothing.

#include <filesystem>
#include <string>
#include <vector>

#include "factory/oci/layout.hpp"

namespace factory::registry {

namespace fs = std::filesystem;

class BlobSources {
  public:
    explicit BlobSources(const oci::Layout& store);
    explicit BlobSources(const cache::BlobStore& blobs); // the store of these blobs

    // Notes that the blob `digest` is in host/repository (best effort: errors are ignored).
    void record(const std::string& digest, const std::string& host,
                const std::string& repository) const noexcept;
    // The repositories of host that have the blob, most recently recorded first, at most max.
    std::vector<std::string> repositories(const std::string& digest, const std::string& host,
                                          std::size_t max = 3) const;

  private:
    fs::path file(const std::string& digest) const; // empty for a malformed digest
    fs::path dir_;
};

} // namespace factory::registry
