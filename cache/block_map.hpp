#pragma once
// Block maps (docs/cache.md "Block maps"): for a layer blob whose compressed stream is a
// series of independent pieces (gzip members), the list of those pieces, each named by what
// made it, so that a later layer with a piece of the same input can copy its compressed bytes
// instead of compressing them again.
//
//   blocks/<hh>/<blob hex>   the map of blob <blob hex>        (format: blocks 2, reads 1)
//
// cache/ knows nothing of gzip: a block is a byte range of the blob, and its key is a hex
// string the layer writer chose (the sha256 of the block's uncompressed bytes); `format` says
// what the keys and bytes mean (codec, level, cut rule), and a writer uses only maps of its own
// format. A map is derived data: it is only as good as its blob, so it lives and dies with it
// (prune removes the maps of removed blobs) and a missing or bad map only costs compression.

#include "cache/blob_files.hpp"
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
    // Version 2: where the stream stands at the block's end, so a writer can resume there.
    // input_end is the uncompressed bytes up to the end; input_state and blob_state the SHA-256
    // midstates of the uncompressed and the compressed stream at the end (after input_end and
    // offset + size bytes), in the layer writer's spelling (hex and '.'). All empty/0 in a
    // version 1 map.
    std::uint64_t input_end = 0;
    std::string input_state{}, blob_state{};
};

struct BlockMap {
    std::string format; // one line of printable ASCII, e.g. "gzip-members/1 libdeflate-1.14 6"
    std::vector<Block> blocks; // in stream order
};

// True when every block carries its midstates (a version 2 map).
bool has_midstates(const BlockMap& map);
// The file's bytes: "factory-blocks 2\n" "format " FORMAT "\n"
// ("KEY OFFSET SIZE INPUT_END INPUT_STATE BLOB_STATE\n")* "end " sha256-hex-of-everything-before
// "\n" when has_midstates(map), else version 1: "factory-blocks 1\n", lines "KEY OFFSET SIZE".
std::string serialize_block_map(const BlockMap& map);
// The inverse, for both versions. Errors say what is wrong ("line 3: bad offset"); a truncated
// or edited file fails its checksum.
Result<BlockMap> parse_block_map(std::string_view text);
// True when the blocks cover [0, blob_size) exactly, in order, none empty.
Result<void> check_block_tiling(const BlockMap& map, std::uint64_t blob_size);

// For a map with midstates: its last block's blob midstate, finished, must be blob_hex (the
// whole blob hashed); an error says it isn't. A map without midstates passes.
Result<void> check_block_midstates(const BlockMap& map, std::string_view blob_hex);

class BlockMaps {
  public:
    explicit BlockMaps(const fs::path& root);

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
    BlobFiles files_;
};

} // namespace factory::cache
