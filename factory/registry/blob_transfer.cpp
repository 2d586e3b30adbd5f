#include "factory/registry/blob_transfer.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace factory::registry {

void for_each_parallel(std::size_t count, std::size_t threads,
                       const std::function<void(std::size_t, const std::atomic<bool>&)>& job) {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> cancelled{false};
    std::exception_ptr first;
    std::mutex mutex;
    auto worker = [&] {
        for (;;) {
            auto i = next.fetch_add(1);
            if (i >= count || cancelled) return;
            try {
                job(i, cancelled);
            } catch (...) {
                std::lock_guard lock(mutex);
                if (!first) first = std::current_exception();
                cancelled = true;
            }
        }
    };
    std::size_t n = std::clamp<std::size_t>(threads, 1, std::max<std::size_t>(count, 1));
    if (n == 1) {
        worker();
    } else {
        std::vector<std::jthread> pool;
        for (std::size_t t = 0; t < n; ++t)
            pool.emplace_back(worker);
    }
    if (first) std::rethrow_exception(first);
}

} // namespace factory::registry
