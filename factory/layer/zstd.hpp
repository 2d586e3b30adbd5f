#pragma once
// zstd compression whose output bytes don't depend on the thread count.
//
// libzstd's multithreaded mode (ZSTD_c_nbWorkers >= 1) cuts the input into jobs whose size
// depends on the parameters only, so a stream compressed with any number of workers is the
// same bytes (facebook/zstd#2238, #2327); single-threaded mode (0 workers) gives other bytes.
// So we always use at least one worker, even on one core, and never start a stream with
// ZSTD_e_end (the one-shot path of #2327). The frame carries a content checksum (XXH64), as
// the zstd CLI writes by default, and no content size (the stream length isn't known up
// front). As with gzip, the bytes depend on the libzstd version.

#include "factory/layer/sink.hpp"

#include <memory>

namespace factory::layer {

struct ZstdOptions {
    int level = 3; // 1..19 (the "ultra" levels 20..22 are refused)
    // libzstd worker threads, at least 1 (0 means 1). Any count gives the same bytes. Each
    // worker holds its own job buffers (8 MiB in and out at level 3): measured peak is 34 MiB
    // with 1 worker, 46 with 2, 68 with 4, and higher levels need more (~80 MiB at 9 with 2
    // workers, ~200 MiB at 19).
    unsigned workers = 1;
    bool checksum = true; // ZSTD_c_checksumFlag
};

// A compressor writing one zstd frame into `sink`, with libzstd's default job size for the
// level, so the frame is the one `zstd -N` writes from a pipe. Returns an error for a level
// outside 1..19 or a libzstd built without multithreading.
Result<std::unique_ptr<Compressor>> make_zstd_compressor(Sink sink, ZstdOptions options = {});

} // namespace factory::layer
