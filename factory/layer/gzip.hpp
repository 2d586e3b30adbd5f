#pragma once
// Parallel gzip whose output bytes don't depend on the thread count or the machine.
//
// The format ("gzip" in a recipe, docs/reproducibility.md): the input is cut into blocks and
// each block becomes one gzip member (RFC 1952 §2.2: a gzip file is a series of members;
// gunzip, zlib's gzread, Go's compress/gzip and libarchive read them all). A block ends when it
// reaches 1 MiB, or at a cut() once it holds at least 512 KiB: the layer writer calls cut()
// before the tar entries its content-defined rule picks (layer_writer.hpp), so an edit early in
// a tar moves no block boundary past the next cut. Each block:
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
//
// The machinery is not gzip's alone: make_block_compressor() cuts, keys, reuses and
// compresses blocks the same way with any BlockCodec — zstd layers are the same blocks, each
// one zstd frame (zstd.hpp).

#include "cache/block_map.hpp"
#include "factory/layer/block_plan.hpp"
#include "factory/layer/sink.hpp"
#include "factory/util/sha256_midstate.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace factory::layer {

inline constexpr std::size_t gzip_block_size = 1 << 20;
inline constexpr std::size_t gzip_min_cut = 512 << 10; // a cut() ends only a block this big

class BlockSource;

// What the blocks of a stream were, and how many were copied from a BlockSource.
struct BlockReport {
    cache::BlockMap map; // the compressor's format, a block per member/frame, stream order
    std::size_t reused = 0;
    std::uint64_t reused_input_bytes = 0; // uncompressed bytes not compressed again
};

// One block's compression, for make_block_compressor. Each thread has its own codec.
class BlockCodec {
  public:
    virtual ~BlockCodec() = default;
    // output[0, n) becomes a self-contained piece of the stream (a gzip member, a zstd frame)
    // holding `input`, a function of `input` alone, whatever was compressed before; returns n.
    // `output` keeps its size between blocks (grown when a block needs more), so a buffer is
    // not zeroed again for every block.
    virtual Result<std::size_t> compress(const std::vector<unsigned char>& input,
                                         std::vector<unsigned char>& output) = 0;
    // True when `piece` (bytes a BlockSource gave for the input's key) really is a piece of
    // this codec holding `input`: a guard against a map or blob that lies.
    virtual bool holds(const std::vector<unsigned char>& piece,
                       const std::vector<unsigned char>& input) = 0;
};

struct BlockOptions {
    int level = -1;       // the codec's level, -1 for its default: libdeflate 1..9 (6)
    unsigned threads = 0; // compressing threads; 0: the hardware's (capped at 32)
    // Blocks to copy when a block's input is the same (checked by BlockCodec::holds too: a
    // member's CRC-32 and size): the output is byte for byte what compressing would give.
    // May be null.
    const BlockSource* reuse = nullptr;
    // Filled with the stream's blocks when not null (costs a sha256 of the input of every
    // block that `plan` gives no key).
    BlockReport* report = nullptr;
    // The keys of the blocks, worked out from the entries (block_plan.hpp). A block takes its
    // planned key only if it ends where the plan says; from the first one that doesn't, and
    // for a planned block without a key, the key is the sha256 of the block's bytes.
    const std::vector<PlannedBlock>* plan = nullptr;
    // When not null, updated with the stream's input (at each block's end) and output, in
    // order, and their midstates written into the report's blocks.
    ResumableSha256* input_sha = nullptr;
    ResumableSha256* output_sha = nullptr;
    // A stream that continues one whose first blocks are already written (layer_writer.cpp
    // resumes after a previous layer's unchanged blocks): `prefix` are those blocks (their
    // map entries, counted as reused in the report); the first block of this compressor is
    // plan[prefix.size()], and the hashes above already hold the prefix.
    std::vector<cache::Block> prefix{};
};
using GzipOptions = BlockOptions;

// The BlockMap format of this writer at a level: the cut rule, the codec's version, the level.
std::string gzip_block_format(int level);

// The generic form: a compressor of blocks cut as above, each compressed by a codec that
// `make_codec` makes (once per thread), its report's map of format `format`. options.level
// is the codec's business (make_codec's), not read here.
Result<std::unique_ptr<Compressor>>
make_block_compressor(Sink sink, std::function<std::unique_ptr<BlockCodec>()> make_codec,
                      std::string format, BlockOptions options);

// A compressor writing a gzip stream into `sink`. With threads == 1 all work happens in the
// caller's thread. Its cut() ends the current block when it holds gzip_min_cut bytes or more.
// Returns an error for a level outside 1..9.
Result<std::unique_ptr<Compressor>> make_gzip_compressor(Sink sink, GzipOptions options = {});

} // namespace factory::layer
