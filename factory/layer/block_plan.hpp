#pragma once
// The blocks a gzip layer's tar will be cut into (gzip.hpp, layer_writer.hpp's cut rule),
// worked out from the entries' metadata alone, and a key for each block that names its input
// without reading it: so a rebuild can tell which leading blocks of the previous layer of a
// step are the same bytes, and resume both SHA-256s after them (docs/performance.md
// "Incremental layers").
//
// A block's key, when every entry it overlaps has a known content digest, is
//   sha256( "factory-block/1\0" u64le(offset of the block in its first piece)
//           u64le(block bytes) piece* )
//   piece = "entry\0" u64le(len(headers)) headers u64le(content size) content-id
//         | "end\0"                                   (the two zero blocks ending the archive)
// over the pieces of the tar it overlaps, headers being the exact bytes tar_headers() writes.
// The tar bytes of an entry are a function of its headers and its content, so equal keys mean
// equal input up to a collision of the content's id. content-id is the content's sha256 in
// hex, the caller's (Entry::sha256 — for a copy step the stat cache's, the same evidence a
// step-cache hit rests on), or else Entry::content_id ("git-blob:" and the blob's SHA-1 id,
// for a git step, whose key is a commit id: the same trust); in-memory data is hashed here. A
// block overlapping a file of unknown content has no key (""): the compressor then keys it by
// the sha256 of its bytes, as before.

#include "factory/layer/entry.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace factory::layer {

struct PlannedBlock {
    std::uint64_t input_end = 0; // tar bytes up to the end of the block
    std::string key;             // 64 hex, or "" (unknown digest)
    // When the block ends between two entries: how many entries come before that point (the
    // end of the archive counts as after the last). nullopt when it ends inside an entry.
    std::optional<std::size_t> entries_before;
};

// The blocks of the tar of `sorted` (canonical order, sort_entries) at `epoch`, as the
// layer writer and the gzip compressor will cut them. An error for an entry whose headers
// can't be written (tar_headers).
Result<std::vector<PlannedBlock>> plan_gzip_blocks(const std::vector<Entry>& sorted,
                                                   std::int64_t epoch);

} // namespace factory::layer
