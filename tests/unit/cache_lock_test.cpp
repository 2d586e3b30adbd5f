#include "cache/lock.hpp"
#include "tests/unit/test_dir.hpp"

#include <atomic>
#include <chrono>
#include <signal.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using factory::cache::FileLock;
using factory::cache::KeyLock;
using factory::cache::LockMode;
using factory::cache::LockWait;
using factory::cache::StoreLock;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string key(char c) {
    return std::string(64, c);
}

// Forks a child that takes the lock, tells us through a pipe, then sleeps until killed.
pid_t hold_in_child(const std::function<void()>& take) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        take();
        char c = 'x';
        (void)!::write(fds[1], &c, 1);
        for (;;)
            ::pause();
    }
    ::close(fds[1]);
    char c;
    EXPECT_EQ(::read(fds[0], &c, 1), 1);
    ::close(fds[0]);
    return pid;
}

void kill_child(pid_t pid) {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
}

} // namespace

TEST(CacheLock, KeyLockAdmitsOneHolderAtATime) {
    factory::testing::TestDir dir;
    std::atomic<int> holders{0}, max_holders{0}, done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 20; ++i) {
                auto lock = KeyLock::acquire(dir.path(), key('a'));
                int now = ++holders;
                int seen = max_holders.load();
                while (now > seen && !max_holders.compare_exchange_weak(seen, now)) {
                }
                std::this_thread::sleep_for(200us);
                --holders;
                ++done;
            }
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(done.load(), 120);
    EXPECT_EQ(max_holders.load(), 1);
    EXPECT_TRUE(fs::exists(dir / ("locks/aa/" + key('a') + ".lock")));
}

TEST(CacheLock, KeyLockAcrossProcessesAndReleasedOnDeath) {
    factory::testing::TestDir dir;
    pid_t child = hold_in_child([&] { static auto l = KeyLock::acquire(dir.path(), key('b')); });
    EXPECT_FALSE(KeyLock::try_acquire(dir.path(), key('b')));
    EXPECT_TRUE(KeyLock::try_acquire(dir.path(), key('c'))); // other keys are free
    kill_child(child);                                       // SIGKILL: the kernel drops the flock
    EXPECT_TRUE(KeyLock::try_acquire(dir.path(), key('b')));
}

TEST(CacheLock, WaiterGetsTheKeyWhenTheHolderReleases) {
    factory::testing::TestDir dir;
    auto first = std::make_optional(KeyLock::acquire(dir.path(), key('d')));
    std::atomic<bool> waited{false}, got{false};
    std::thread waiter([&] {
        LockWait wait;
        wait.on_wait = [&] { waited = true; };
        auto l = KeyLock::acquire(dir.path(), key('d'), wait);
        got = true;
    });
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(waited.load());
    EXPECT_FALSE(got.load());
    first.reset();
    waiter.join();
    EXPECT_TRUE(got.load());
}

TEST(CacheLock, SharedLocksCoexistExclusiveDoesNot) {
    factory::testing::TestDir dir;
    auto p = dir / "x.lock";
    auto a = FileLock::shared(p);
    auto b = FileLock::try_acquire(p, LockMode::shared);
    EXPECT_TRUE(b);
    EXPECT_FALSE(FileLock::try_exclusive(p));
    a.unlock();
    b->unlock();
    auto c = FileLock::try_exclusive(p);
    ASSERT_TRUE(c);
    EXPECT_FALSE(FileLock::try_acquire(p, LockMode::shared));
}

TEST(CacheLock, TimeoutThrowsAClearError) {
    factory::testing::TestDir dir;
    auto p = dir / "x.lock";
    auto held = FileLock::exclusive(p);
    LockWait wait{200ms, {}};
    auto t0 = std::chrono::steady_clock::now();
    try {
        FileLock::exclusive(p, wait);
        FAIL() << "no timeout";
    } catch (const factory::Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "timed out after 200 ms waiting for a lock on " + p.string());
    }
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
    EXPECT_FALSE(FileLock::acquire_or_timeout(p, LockMode::shared, {10ms, {}}));
}

TEST(CacheLock, PruneWaitsForBuildsAndGivesUp) {
    factory::testing::TestDir dir;
    pid_t child = hold_in_child([&] { static auto l = StoreLock::build(dir.path()); });
    // Two builds share the store.
    EXPECT_NO_THROW(StoreLock::build(dir.path(), {100ms, {}}));
    bool told = false;
    try {
        StoreLock::maintenance(dir.path(), {300ms, [&] { told = true; }});
        FAIL() << "maintenance got the lock while a build held it";
    } catch (const factory::Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "the store " + dir.path().string() +
                      " is in use by a running build: gave up after 300 ms waiting for " +
                      (dir / "locks/store.lock").string());
    }
    EXPECT_TRUE(told);
    EXPECT_FALSE(StoreLock::try_maintenance(dir.path()));
    kill_child(child);
    auto m = StoreLock::try_maintenance(dir.path());
    ASSERT_TRUE(m);
    EXPECT_EQ(m->mode(), LockMode::exclusive);
    // A build waits for maintenance.
    EXPECT_THROW(StoreLock::build(dir.path(), {50ms, {}}), factory::Error);
}

TEST(CacheLock, InvalidKeyIsRefused) {
    factory::testing::TestDir dir;
    EXPECT_THROW(KeyLock::acquire(dir.path(), "../escape"), factory::Error);
}
