#pragma once
// The store's files derived from one blob each (block maps, listings): DIR/<hh>/<blob hex>,
// written whole (AtomicFile), read back with a cap on their size, listed and removed with their
// blob by prune and verify. What a file holds is its owner's business (block_map.hpp,
// listings.hpp); this is only where it lives.

#include "factory/util/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace factory::cache {

class BlobFiles {
  public:
    BlobFiles(std::filesystem::path dir, std::uint64_t max_size)
        : dir_(std::move(dir)), max_size_(max_size) {}

    // DIR/<hh>/<blob hex>. Throws Error for an invalid hex.
    std::filesystem::path path(std::string_view blob_hex) const;
    // Publishes the file of blob_hex (AtomicFile), creating its shard. Throws Error.
    void put(std::string_view blob_hex, std::string_view bytes) const;
    // Its bytes; an error when there is none, the hex is invalid or it is over the cap.
    Result<std::string> read(std::string_view blob_hex) const;
    // Blob hexes that have a file (well-named ones in their own shard), in no particular order.
    std::vector<std::string> list() const;
    // Removes the file of blob_hex; true if there was one.
    bool remove(std::string_view blob_hex) const;

  private:
    std::filesystem::path dir_;
    std::uint64_t max_size_;
};

} // namespace factory::cache
