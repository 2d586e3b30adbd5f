#pragma once
// Compressed blocks of earlier layers a layer writer may copy instead of compressing again
// (docs/performance.md "Incremental layers"). Each block is a byte range of a layer blob,
// found through the blob's map (cache/block_map.hpp) by its key: the sha256 of the block's
// uncompressed bytes. Only maps of the writer's own format (codec, level, library version,
// cut rule) are used, so a reused block is the very bytes compressing would give.

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
    };
    // Where a block of that key (64 hex) is. Safe to call from several threads.
    std::optional<Found> find(std::string_view key) const;
    // Its compressed bytes (pread). Safe to call from several threads.
    Result<void> read(const Found& found, std::vector<unsigned char>& out) const;

  private:
    std::string format_;
    std::vector<Fd> blobs_;
    std::unordered_map<std::string, Found> where_;
};

} // namespace factory::layer
