#pragma once
// Advisory file locks (flock) for the store (docs/cache.md "Locking").
//
// An flock belongs to an open file description, so two FileLocks on the same path conflict
// whether they are held by two processes or two threads of one process, and the kernel drops a
// lock when its holder dies: a SIGKILLed build never leaves the store locked. Lock files are
// created on first use and never deleted while anyone may use them (deleting a lock file that a
// waiter has open would let two holders in); `cache prune` removes the per-key ones while it holds
// the store lock exclusively.
//
// The protocol:
//   - a build holds StoreLock::build (locks/store.lock, shared) from start to end;
//   - before building a step that missed, it takes KeyLock (locks/<2 hex>/<key>.lock, exclusive),
//     looks the key up again (another builder may have just published it), and builds only if it
//     still misses; the record is published before the KeyLock is released;
//   - `cache prune` and `cache verify --repair` hold StoreLock::maintenance (exclusive), so they
//     never remove what a running build holds or is about to reference.
// A KeyLock is only taken while holding the store lock shared.

#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>

namespace factory::cache {

namespace fs = std::filesystem;

enum class LockMode { shared, exclusive };

struct LockWait {
    // How long to wait for a busy lock; nullopt waits for ever.
    std::optional<std::chrono::milliseconds> timeout;
    // Called once, before waiting, when the lock is busy (to print "waiting for …").
    std::function<void()> on_wait;
};

class FileLock {
  public:
    FileLock() = default; // holds nothing
    FileLock(FileLock&&) noexcept = default;
    FileLock& operator=(FileLock&&) noexcept = default;
    ~FileLock() = default; // closing the descriptor releases the lock

    // Creates the lock file (and its parent directories) if needed, then locks it, waiting as
    // `wait` says. Throws Error on I/O errors and on timeout: "timed out after 30 s waiting for
    // <what> (<path>)".
    static FileLock acquire(const fs::path& path, LockMode mode, const LockWait& wait = {});
    static FileLock exclusive(const fs::path& path, const LockWait& wait = {}) {
        return acquire(path, LockMode::exclusive, wait);
    }
    static FileLock shared(const fs::path& path, const LockWait& wait = {}) {
        return acquire(path, LockMode::shared, wait);
    }
    // Never waits: nullopt if someone else holds a conflicting lock. Throws Error on I/O errors.
    static std::optional<FileLock> try_acquire(const fs::path& path, LockMode mode);
    // Like acquire(), but nullopt when wait.timeout expires.
    static std::optional<FileLock> acquire_or_timeout(const fs::path& path, LockMode mode,
                                                      const LockWait& wait);
    static std::optional<FileLock> try_exclusive(const fs::path& path) {
        return try_acquire(path, LockMode::exclusive);
    }

    bool locked() const noexcept { return static_cast<bool>(fd_); }
    const fs::path& path() const noexcept { return path_; }
    void unlock() noexcept { fd_.reset(); }

  private:
    FileLock(Fd fd, fs::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
    Fd fd_;
    fs::path path_;
};

// locks/store.lock: shared by builds, exclusive for prune and repair.
class StoreLock {
  public:
    static fs::path path(const fs::path& root) { return root / "locks" / "store.lock"; }

    // Shared. Waits while a prune runs; the error on timeout names the store.
    static StoreLock build(const fs::path& root, const LockWait& wait = {});
    // Exclusive. Waits while builds run; on timeout throws "the store <root> is in use by a
    // running build: gave up after 30 s".
    static StoreLock maintenance(const fs::path& root, const LockWait& wait = {});
    // Exclusive without waiting (automatic pruning skips a busy store).
    static std::optional<StoreLock> try_maintenance(const fs::path& root);

    LockMode mode() const noexcept { return mode_; }

  private:
    StoreLock(FileLock lock, LockMode mode) : lock_(std::move(lock)), mode_(mode) {}
    FileLock lock_;
    LockMode mode_;
};

// One builder per cache key: locks/<first 2 hex>/<key>.lock, exclusive.
class KeyLock {
  public:
    // Throws Error if key is not 64 lower-case hex digits.
    static fs::path path(const fs::path& root, std::string_view key);
    static KeyLock acquire(const fs::path& root, std::string_view key, const LockWait& wait = {});
    static std::optional<KeyLock> try_acquire(const fs::path& root, std::string_view key);

  private:
    explicit KeyLock(FileLock lock) : lock_(std::move(lock)) {}
    FileLock lock_;
};

} // namespace factory::cache
