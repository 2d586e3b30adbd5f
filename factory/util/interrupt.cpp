#include "factory/util/interrupt.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <thread>

namespace factory {

namespace {

constexpr int signals[] = {SIGINT, SIGTERM, SIGHUP};

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};

std::mutex g_mutex;
int g_guards = 0;
struct sigaction g_old[std::size(signals)];

// Async-signal-safe: atomics, sigaction and raise only.
// The signal is stored before the flag, so whoever sees the flag can name the signal.
void on_signal(int sig) {
    int none = 0;
    if (!g_signal.compare_exchange_strong(none, sig)) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(sig, &dfl, nullptr);
        ::raise(sig);
        return;
    }
    g_interrupted.store(true);
}

} // namespace

InterruptGuard::InterruptGuard() {
    std::lock_guard lock(g_mutex);
    if (g_guards++ > 0) return;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (std::size_t i = 0; i < std::size(signals); ++i)
        ::sigaction(signals[i], &sa, &g_old[i]);
}

InterruptGuard::~InterruptGuard() {
    std::lock_guard lock(g_mutex);
    if (--g_guards > 0) return;
    for (std::size_t i = 0; i < std::size(signals); ++i)
        ::sigaction(signals[i], &g_old[i], nullptr);
}

const std::atomic<bool>& interrupted() noexcept {
    return g_interrupted;
}

int interrupt_signal() noexcept {
    return g_signal.load();
}

Error interrupted_error() {
    int sig = interrupt_signal();
    const char* abbrev = sig > 0 ? ::sigabbrev_np(sig) : nullptr;
    std::string name = abbrev ? std::string("SIG") + abbrev : "a signal";
    return Error("interrupted by " + name, static_cast<ExitCode>(128 + std::max(sig, 0)));
}

void throw_if_interrupted() {
    if (interrupted()) throw interrupted_error();
}

bool sleep_unless_interrupted(std::chrono::milliseconds delay) {
    using namespace std::chrono;
    auto end = steady_clock::now() + delay;
    while (!interrupted()) {
        auto now = steady_clock::now();
        if (now >= end) return true;
        std::this_thread::sleep_for(std::min<steady_clock::duration>(end - now, 50ms));
    }
    return false;
}

} // namespace factory
