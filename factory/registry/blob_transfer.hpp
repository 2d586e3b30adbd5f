#pragma once
// Running one job per blob on a bounded number of threads; the first failure stops the others
// (they finish their current transfer's attempt) and is rethrown.

#include <atomic>
#include <cstddef>
#include <functional>

namespace factory::registry {

// Calls job(i, cancelled) for i in [0, count) on at most `threads` threads. `cancelled` turns
// true once a job threw; jobs should give up early when it does. Rethrows the first exception.
void for_each_parallel(std::size_t count, std::size_t threads,
                       const std::function<void(std::size_t, const std::atomic<bool>&)>& job);

} // namespace factory::registry
