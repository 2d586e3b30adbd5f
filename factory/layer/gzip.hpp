#pragma once
// Parallel gzip whose output bytes don't depend on the thread count (pigz's scheme).
//
// The input is cut into fixed 128 KiB blocks. Each block is raw-deflated on its own (zlib,
// windowBits -15, memLevel 8, default strategy) with the previous block's last 32 KiB as
// preset dictionary, and ends in a sync flush (the last in Z_FINISH), so the pieces
// concatenate into one deflate stream. A block's bytes depend only on its input, its
// dictionary and the level: any thread count, and any way of cutting the input into write()
// calls, gives the same stream. The header is fixed (RFC 1952): no name, mtime 0, XFL 0,
// OS 255; the trailer holds the CRC-32 (combined from the blocks' CRCs) and the size mod
// 2^32. The bytes still depend on the zlib version, which is why there is one pinned zlib.
//
// Memory stays bounded whatever the input size: at most 2 blocks per thread are in flight.

#include "factory/layer/sink.hpp"

#include <cstddef>
#include <memory>

namespace factory::layer {

inline constexpr std::size_t gzip_block_size = 128 << 10;

struct GzipOptions {
    int level = 6;        // zlib level, 1..9
    unsigned threads = 0; // compressing threads; 0: the hardware's (capped at 32)
};

// A compressor writing a gzip stream into `sink`. With threads == 1 all work happens in the
// caller's thread. Returns an error for a level outside 1..9.
Result<std::unique_ptr<Compressor>> make_gzip_compressor(Sink sink, GzipOptions options = {});

} // namespace factory::layer
