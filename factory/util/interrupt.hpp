#pragma once
// Stopping a build on SIGINT, SIGTERM or SIGHUP (Ctrl-C, a cancelled CI job, a closed terminal)
// without leaving its work behind (docs/cli.md "Interrupting a build").
//
// While an InterruptGuard lives, the first of those signals is recorded instead of ending the
// process. The work polls interrupted(): a RUN step's container is killed and deleted, a
// bootstrap or a retry's pause stops, the next step does not start; the error is
// interrupted_error(), which unwinds through the destructors that unmount and remove scratch
// directories, and nothing is published. A second signal ends the process at once, as
// without the guard. Guards nest; the last one restores the dispositions found by the first.

#include "factory/util/error.hpp"

#include <atomic>
#include <chrono>

namespace factory {

class InterruptGuard {
  public:
    InterruptGuard();
    ~InterruptGuard();
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// True once a signal arrived under a guard (and from then on, for this process).
const std::atomic<bool>& interrupted() noexcept;

// The signal that interrupted, 0 for none.
int interrupt_signal() noexcept;

// "interrupted by SIGTERM", exit code 128 + the signal, as a shell reports a killed command.
Error interrupted_error();

// Throws interrupted_error() when interrupted().
void throw_if_interrupted();

// Sleeps for `delay`, waking every 50 ms to poll interrupted(); false when interrupted.
bool sleep_unless_interrupted(std::chrono::milliseconds delay);

} // namespace factory
