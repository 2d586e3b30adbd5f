#pragma once
// zstd layers whose bytes don't depend on the thread count or on which blocks were reused.
//
// The format ("zstd" in a recipe, docs/reproducibility.md): the blocks of gzip.hpp — the same
// content-defined cut rule, at most 1 MiB each — each compressed into one zstd frame, and the
// frames concatenated (RFC 8878 §3.1: a zstd stream is a series of frames; zstd(1), libzstd's
// streaming decoder and podman read them all, tests/interop/podman.sh). A frame is ZSTD_compress2()
// of the block with pinned libzstd (1.5.4) at the level (3 by default) in single-threaded mode, its
// content size in the header and a content checksum (XXH64) at its end, as `zstd -3` writes a file.
// A frame is a function of its block and the level alone, so the blocks are compressed by the same
// pool of threads as gzip members, copied from an earlier layer when their input is unchanged, and
// resumed after (the "Incremental layers" of docs/performance.md).
//
// Incompressible blocks need no rule of ours: zstd itself writes raw blocks for them, at
// ~1.6 GB/s on random data here (`zstd -b3 -B1M`), faster than the SHA-256 of the tar. deflate
// spends as long on such data as on text, hence gzip's stored members.

#include "factory/layer/gzip.hpp"

#include <memory>
#include <string>

namespace factory::layer {

// The BlockMap format of zstd layers at a level: the cut rule, libzstd's version, the level.
std::string zstd_block_format(int level);

// A compressor writing zstd frames into `sink`, a frame per block (gzip.hpp's options: level
// 1..19, 3 by default; threads; reuse, plan, hashes). Returns an error for a level outside
// 1..19 (the "ultra" levels 20..22 are refused).
Result<std::unique_ptr<Compressor>> make_zstd_compressor(Sink sink, BlockOptions options = {});

} // namespace factory::layer
