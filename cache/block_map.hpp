#pragma once
// Block maps (docs/cache.md "Block maps"): for a layer blob whose compressed stream is a
// series of independent pieces (gzip members), the list of those pieces, each named by what
// made it, so that a later layer with a piece of the same input can copy its compressed bytes
// instead of compressing them again.
//
//   blocks/<hh>/<blob hex>   the map of blob <blob hex>             (format: blocks 1)
//
// cache/ knows nothing of gzip: a block is a byte range of the blob, and its key is a hex
// string the layer writer chose (the sha256 of the block's uncompressed bytes); `format` says
// what the keys and bytes mean (codec, level, cut rule), and a writer uses only maps of its own
// format. A map is derived data: it is only as good as its blob, so it lives and dies with it
// (prune removes the maps of removed blobs) and a missing or bad map only costs compression.

#include "factory/util/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace factory::cache {

namespace fs = std::filesystem;

struct Block {
    std::string key;          // 64 lower-case hex
    std::uint64_t offset = 0; // in the blob
    std::uint64_t size = 0;   // compressed bytes
};

struct BlockMap {
    std::string format; // one line of printable ASCII, e.g. "gzip-members/1 libdeflate-1.14 6"
    std::vector<Block> blocks; // in stream order
};

// The file's bytes: "factory-blocks 1\n" "format " FORMAT "\n" ("KEY OFFSET SIZE\n")*
// "end " sha256-hex-of-everything-before "\n".
std::string serialize_block_map(const BlockMap& map);
// The inverse. Errors say what is wrong ("line 3: bad offset"); a truncated or edited file
// fails its checksum.
Result<BlockMap> parse_block_map(std::string_view text);
// True when the blocks cover [0, blob_size) exactly, in order, none empty.
Result<void> check_block_tiling(const BlockMap& map, std::uint64_t blob_size);

class BlockMaps {
  public:
    explicit BlockMaps(fs::path root) : root_(std::move(root)) {}

    // blocks/<hh>/<blob hex>. Throws Error for an invalid hex.
    fs::path path(std::string_view blob_hex) const;
    // Publishes the map of a blob already in the store (AtomicFile). Throws Error.
    void put(std::string_view blob_hex, const BlockMap& map) const;
    // The map of blob_hex; an error when there is none or it doesn't parse.
    Result<BlockMap> read(std::string_view blob_hex) const;
    // Blob hexes that have a map file (well-named ones only), in no particular order.
    std::vector<std::string> list() const;
    // Removes the map of blob_hex; true if there was one.
    bool remove(std::string_view blob_hex) const;

  private:
    fs::path root_;
};

} // namespace factory::cache
