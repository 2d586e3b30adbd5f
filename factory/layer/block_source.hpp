#pragma once
// Compressed blocks of earlier layers a layer writer may copy instead of compressing again
// (docs/performance.md "Incremental layers"). Each block is a byte range of a layer blob,
// found through the blob's map (cache/block_map.hpp) by its key (block_plan.hpp: what made
// the block, or the sha256 of its uncompressed bytes). Only maps of the writer's own format (codec,
// level, library version, cut rule) are used, so a reused block is the very bytes compressing would
// give.

#include "cache/block_map.hpp"
#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace factory::layer {

class BlockSource {
  public:
    // Only maps whose format is `format` are taken.
    explicit BlockSource(std::string format) : format_(std::move(format)) {}

    // Adds the blocks of one blob, open for reading; false (and nothing added) when the map's
    // format differs. The first blob naming a key wins.
    bool add(Fd blob, const cache::BlockMap& map);
    std::size_t size() const noexcept { return where_.size(); }

    struct Found {
        std::size_t blob = 0;
        std::uint64_t offset = 0, size = 0;
        std::size_t index = 0; // in its map
    };
    // Where a block of that key (64 hex) is. Safe to call from several threads.
    std::optional<Found> find(std::string_view key) const;
    // Its compressed bytes (pread). With a map of midstates, the bytes must also be those the
    // map hashed (the blob's SHA-256 from the block before's state to this one's): a damaged
    // blob is an error, not a block. Safe to call from several threads.
    Result<void> read(const Found& found, std::vector<unsigned char>& out) const;

    // The maps added, in order (blob i is the i-th map's), for a writer that resumes after
    // the leading blocks a map shares with its input (layer_writer.cpp).
    const std::vector<cache::BlockMap>& maps() const noexcept { return maps_; }
    int blob_fd(std::size_t blob) const { return blobs_[blob].get(); }

  private:
    Result<void> check_bytes(const Found& found, const std::vector<unsigned char>& bytes) const;

    std::string format_;
    std::vector<Fd> blobs_;
    std::vector<cache::BlockMap> maps_;
    std::unordered_map<std::string, Found> where_;
};

} // namespace factory::layer
