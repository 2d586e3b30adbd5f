#pragma once
// Parallel gzip whose output bytes don't depend on the thread count or the machine.
//
// The format ("gzip" in a recipe, docs/reproducibility.md): the input is cut into fixed 1 MiB
// blocks and each block becomes one gzip member (RFC 1952 §2.2: a gzip file is a series of
// members; gunzip, zlib's gzread, Go's compress/gzip and libarchive read them all):
//   - a block whose bytes look incompressible (order-0 entropy above 7.95 bits a byte) is
//     written as deflate stored blocks, without running the compressor;
//   - any other block is libdeflate_gzip_compress() of the block at the level (libdeflate 1.14,
//     6 by default): header without name or mtime, OS 255, XFL as libdeflate sets it.
// Blocks are independent (no preset dictionary: libdeflate has none), so a block's bytes are
// a function of its input and the level alone, whatever the thread count and however the input
// is cut into write() calls. The 1 MiB block is what wins back the ratio lost to independence:
// 0.8% bigger than pigz -6 on a tar of C headers where 128 KiB blocks lose 3.4%
// (docs/performance.md). The bytes still depend on the libdeflate version, which is pinned.
//
// Memory stays bounded whatever the input size: at most 2 blocks per thread are in flight.

#include "factory/layer/sink.hpp"

#include <cstddef>
#include <memory>

namespace factory::layer {

inline constexpr std::size_t gzip_block_size = 1 << 20;

struct GzipOptions {
    int level = 6;        // libdeflate level, 1..9
    unsigned threads = 0; // compressing threads; 0: the hardware's (capped at 32)
};

// A compressor writing a gzip stream into `sink`. With threads == 1 all work happens in the
// caller's thread. Returns an error for a level outside 1..9.
Result<std::unique_ptr<Compressor>> make_gzip_compressor(Sink sink, GzipOptions options = {});

} // namespace factory::layer
