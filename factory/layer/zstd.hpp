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

#include <memory>

#include "factory/layer/sink.hpp"

namespace factory::layer {

struct ZstdOptions {
    int level = 3;        // 1..19 (the "ultra" levels would blow the memory bound)
    unsigned threads = 0; // zstd workers; 0: the hardware's. At least 1, capped at 4.
    bool checksum = true; // ZSTD_c_checksumFlag
};

// A compressor writing one zstd frame into `sink`. Returns an error for a level outside
// 1..19 or a libzstd built without multithreading.
Result<std::unique_ptr<Compressor>> make_zstd_compressor(Sink sink, ZstdOptions options = {});

} // namespace factory::layer
