#pragma once
// The one-pass layer pipeline (DESIGN.md "Layers, bit for bit"):
//
//   entries → deterministic tar → SHA-256 (diff_id) → compressor → SHA-256 (digest) → out_fd
//
// File content is streamed in chunks, so memory stays bounded whatever the file sizes: the
// 1 MiB tar buffer plus the compressor's state, ~15 MiB for gzip on 2 threads (two 1 MiB
// blocks in flight per thread, in and out, and libdeflate's matchfinder), about as much for
// zstd -3 (the same blocks, and a libzstd context per thread sized for a 1 MiB input): peaks
// of +17.7 and +19.0 MiB measured by layer_writer_test's Throughput over /usr/include.

#include "cache/block_map.hpp"
#include "factory/layer/entry.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace factory::layer {

enum class Compression { none, gzip, zstd };

class BlockSource;
class ContentSource;

struct LayerOptions {
    std::int64_t epoch = 0; // mtime of every entry (SOURCE_DATE_EPOCH), seconds
    Compression compression = Compression::gzip;
    int level = -1; // -1: the codec's default (gzip 6, zstd 3); gzip 1..9, zstd 1..19
    // Compressing threads (gzip members, zstd frames), 0: the hardware's. The output never
    // depends on it.
    unsigned threads = 0;
    // gzip, zstd: compressed blocks of earlier layers to copy where the input is the same (the
    // output is the same bytes either way; docs/performance.md "Incremental layers"). When the
    // leading blocks of one of them are those of this layer (block_plan.hpp keys), the writer
    // copies them and starts reading, tarring and hashing after them. May be null.
    const BlockSource* reuse = nullptr;
    // Where the contents of the file entries it provides come from instead of their source
    // files (content_source.hpp); read in the writing thread, in canonical order. May be null.
    ContentSource* content = nullptr;
};

struct LayerInfo {
    std::string diff_id;    // "sha256:<hex>" of the uncompressed tar
    std::string digest;     // "sha256:<hex>" of the blob written to out_fd
    std::uint64_t size = 0; // blob bytes
    std::string media_type; // application/vnd.oci.image.layer.v1.tar(+gzip|+zstd)
    // gzip, zstd: the blob's blocks, for its map (cache/block_map.hpp); no format for none.
    cache::BlockMap blocks;
    std::size_t blocks_reused = 0;        // of blocks.blocks, copied from options.reuse
    std::uint64_t reused_input_bytes = 0; // tar bytes those blocks hold
    // Of those, the tar bytes before the point the writer resumed at: neither read, tarred nor
    // hashed again (both hashes continued from the map's midstates).
    std::uint64_t skipped_input_bytes = 0;
};

// The BlockMap format of the layers this writer makes with a compression at a level (-1: the
// codec's default): gzip_block_format, zstd_block_format; "" for none (it has no blocks).
std::string block_format(Compression compression, int level = -1);

// The content-defined cut rule of gzip and zstd layers: true when a new block may start before the
// entry at `path` (the first byte of sha256("factory-cut/1\0" path) is a multiple of 32, so
// about one entry in 32). It looks at the path alone, so an edit of a file's content or size
// moves no cut point; the compressor ends a block at a cut only once it holds 512 KiB.
bool cut_before(std::string_view path);

// image-spec media-types.md: the layer media type for a compression.
std::string_view media_type(Compression compression);
// "gzip", "zstd", "none" (also "uncompressed") → Compression; an error names the word.
Result<Compression> parse_compression(std::string_view name);

// Writes the layer of `entries` (any order; sorted and checked by sort_entries) to out_fd,
// from its current position. Returns an error message on a bad entry, an unreadable or
// changing source file, a bad level or a write failure; then out_fd holds a partial blob the
// caller must discard (it owns the temp file).
Result<LayerInfo> write_layer(std::vector<Entry> entries, const LayerOptions& options, int out_fd);

} // namespace factory::layer
