#pragma once
// The progress of one blob's transfer. On a terminal (--progress tty) a live line per blob in
// flight: "=> [push sha256:0123abcd…] 12.0 MB · 3.1 MB, 5.2 MB/s 1.2s", then a line when it is
// done; in the plain and json forms one event when it is done ("push: sha256:… 12.0 MB pushed, 40.1
// MB/s"), as before.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "factory/oci/descriptor.hpp"
#include "factory/util/progress.hpp"

namespace factory::registry {

class BlobProgress {
  public:
    // kind: "pull" or "push". progress may be null (nothing is shown).
    BlobProgress(Progress* progress, std::string kind, const oci::Descriptor& d);
    ~BlobProgress(); // a transfer never done leaves no live line behind
    BlobProgress(const BlobProgress&) = delete;
    BlobProgress& operator=(const BlobProgress&) = delete;

    // n more bytes moved (thread-safe; cheap: the status is formatted at most 10 times a second).
    void add(std::uint64_t n);
    // Done: outcome like "pushed", "exists", "mounted"; moved: the bytes transferred (a rate is
    // shown when > 0).
    void done(const std::string& outcome, std::uint64_t moved);

  private:
    Progress* progress_;
    std::string kind_, id_, digest_;
    std::uint64_t size_;
    std::chrono::steady_clock::time_point start_;
    std::atomic<std::uint64_t> moved_{0};
    std::atomic<std::int64_t> last_update_ns_{0};
    bool live_ = false, finished_ = false;
};

// " 12.3 MB/s" for bytes moved in secs, or "" when too quick to tell.
std::string rate_text(std::uint64_t bytes, double secs);

} // namespace factory::registry
