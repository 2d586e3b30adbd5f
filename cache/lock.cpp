#include "cache/lock.hpp"

#include "cache/blob_store.hpp"
#include "factory/util/error.hpp"
#include "factory/util/interrupt.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

namespace factory::cache {

namespace {

using namespace std::chrono_literals;

Fd open_lock_file(const fs::path& path) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw Error("cannot create " + path.parent_path().string() + ": " + ec.message());
    // O_RDONLY is enough for flock and works in a store we may not write to but may lock.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) throw Error("cannot open lock file " + path.string() + ": " + errno_string(errno));
    return fd;
}

// One non-blocking attempt: true if locked, false if busy. Throws Error on other errors.
bool try_flock(int fd, LockMode mode, const fs::path& path) {
    int op = (mode == LockMode::shared ? LOCK_SH : LOCK_EX) | LOCK_NB;
    for (;;) {
        if (::flock(fd, op) == 0) return true;
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) return false;
        throw Error("cannot lock " + path.string() + ": " + errno_string(errno));
    }
}

std::string seconds_text(std::chrono::milliseconds d) {
    auto ms = d.count();
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    return std::to_string(ms) + " ms";
}

} // namespace

FileLock FileLock::acquire(const fs::path& path, LockMode mode, const LockWait& wait) {
    auto lock = acquire_or_timeout(path, mode, wait);
    if (!lock)
        throw Error("timed out after " + seconds_text(*wait.timeout) + " waiting for a lock on " +
                    path.string());
    return std::move(*lock);
}

std::optional<FileLock> FileLock::acquire_or_timeout(const fs::path& path, LockMode mode,
                                                     const LockWait& wait) {
    Fd fd = open_lock_file(path);
    if (try_flock(fd.get(), mode, path)) return FileLock(std::move(fd), path);
    if (wait.on_wait) wait.on_wait();
    // Poll with a growing interval: flock has no timed form (SIGALRM would not be thread-safe),
    // and a blocking one would not see an interrupted command (util/interrupt.hpp). Locks are
    // held briefly or by whole builds, so 1 ms → 100 ms is plenty.
    auto deadline = wait.timeout ? std::chrono::steady_clock::now() + *wait.timeout
                                 : std::chrono::steady_clock::time_point::max();
    std::chrono::steady_clock::duration pause = 1ms;
    for (;;) {
        if (try_flock(fd.get(), mode, path)) return FileLock(std::move(fd), path);
        throw_if_interrupted();
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::min(pause, deadline - now));
        pause = std::min<std::chrono::steady_clock::duration>(pause * 2, 100ms);
    }
}

std::optional<FileLock> FileLock::try_acquire(const fs::path& path, LockMode mode) {
    Fd fd = open_lock_file(path);
    if (!try_flock(fd.get(), mode, path)) return std::nullopt;
    return FileLock(std::move(fd), path);
}

StoreLock StoreLock::build(const fs::path& root, const LockWait& wait) {
    auto lock = FileLock::acquire_or_timeout(path(root), LockMode::shared, wait);
    if (!lock)
        throw Error("the store " + root.string() + " is being pruned or repaired: gave up after " +
                    seconds_text(*wait.timeout) + " waiting for " + path(root).string());
    return StoreLock(std::move(*lock), LockMode::shared);
}

StoreLock StoreLock::maintenance(const fs::path& root, const LockWait& wait) {
    auto lock = FileLock::acquire_or_timeout(path(root), LockMode::exclusive, wait);
    if (!lock)
        throw Error("the store " + root.string() + " is in use by a running build: gave up after " +
                    seconds_text(*wait.timeout) + " waiting for " + path(root).string());
    return StoreLock(std::move(*lock), LockMode::exclusive);
}

std::optional<StoreLock> StoreLock::try_maintenance(const fs::path& root) {
    auto lock = FileLock::try_acquire(path(root), LockMode::exclusive);
    if (!lock) return std::nullopt;
    return StoreLock(std::move(*lock), LockMode::exclusive);
}

fs::path KeyLock::path(const fs::path& root, std::string_view key) {
    if (!is_sha256_hex(key))
        throw Error("invalid cache key \"" + std::string(key.substr(0, 80)) +
                    "\": expected 64 lower-case hex digits");
    return root / "locks" / std::string(key.substr(0, 2)) / (std::string(key) + ".lock");
}

KeyLock KeyLock::acquire(const fs::path& root, std::string_view key, const LockWait& wait) {
    return KeyLock(FileLock::acquire(path(root, key), LockMode::exclusive, wait));
}

std::optional<KeyLock> KeyLock::try_acquire(const fs::path& root, std::string_view key) {
    auto lock = FileLock::try_acquire(path(root, key), LockMode::exclusive);
    if (!lock) return std::nullopt;
    return KeyLock(std::move(*lock));
}

} // namespace factory::cache
