#pragma once
// File contents a layer writer takes from a stream instead of opening Entry::source: a git
// step's blobs, read from `git cat-file --batch` while the layer is written, so fetching them
// overlaps tarring and compressing (docs/performance.md "bench/git.sh").

#include "factory/layer/entry.hpp"
#include "factory/util/error.hpp"

#include <cstddef>

namespace factory::layer {

class ContentSource {
  public:
    virtual ~ContentSource() = default;
    // True when this source gives the content of `entry` (a file entry with a source); the
    // tar writer then never opens entry.source. Safe to call from the writer's thread.
    virtual bool provides(const Entry& entry) const = 0;
    // Starts the content of `entry`, one it provides. Entries come in canonical order, each at
    // most once; some may be skipped (a layer resumed after unchanged blocks). An error names
    // what failed.
    virtual Result<void> open(const Entry& entry) = 0;
    // Up to `size` further bytes of the open entry's content into `buf`; 0 at its end.
    virtual Result<std::size_t> read(char* buf, std::size_t size) = 0;
};

} // namespace factory::layer
