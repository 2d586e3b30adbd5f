#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mount.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

using namespace std::chrono_literals;

// The flag is for the life of the process: each test runs in a child of its own (a death test).

int recorded_not_fatal() {
    if (factory::interrupted()) return 1;
    {
        factory::InterruptGuard guard;
        ::raise(SIGTERM);
        if (!factory::interrupted() || factory::interrupt_signal() != SIGTERM) return 2;
    }
    try {
        factory::throw_if_interrupted();
        return 3;
    } catch (const factory::Error& e) {
        if (std::string(e.what()) != "interrupted by SIGTERM") return 4;
        if (static_cast<int>(e.code()) != 128 + SIGTERM) return 5;
    }
    return 0;
}

TEST(Interrupt, ASignalUnderAGuardIsRecordedNotFatal) {
    EXPECT_EXIT(std::exit(recorded_not_fatal()), testing::ExitedWithCode(0), "");
}

int sleep_wakes() {
    if (!factory::sleep_unless_interrupted(10ms)) return 1;
    factory::InterruptGuard guard;
    factory::InterruptGuard nested;
    ::raise(SIGHUP);
    auto start = std::chrono::steady_clock::now();
    if (factory::sleep_unless_interrupted(10s)) return 2;
    if (std::chrono::steady_clock::now() - start > 1s) return 3;
    if (std::string(factory::interrupted_error().what()) != "interrupted by SIGHUP") return 4;
    return 0;
}

TEST(Interrupt, SleepWakesWhenInterrupted) {
    EXPECT_EXIT(std::exit(sleep_wakes()), testing::ExitedWithCode(0), "");
}

TEST(Interrupt, TheSecondSignalEndsTheProcess) {
    EXPECT_EXIT(
        {
            factory::InterruptGuard guard;
            ::raise(SIGINT);
            ::raise(SIGINT);
            std::exit(0);
        },
        testing::KilledBySignal(SIGINT), "");
}

TEST(Interrupt, TheLastGuardRestoresTheDisposition) {
    EXPECT_EXIT(
        {
            { factory::InterruptGuard guard; }
            ::raise(SIGTERM);
            std::exit(0);
        },
        testing::KilledBySignal(SIGTERM), "");
}

// Mount points are read from mountinfo, where a space is written \040.
TEST(MountsUnder, FindsMountsBelowADirectoryDeepestFirst) {
    factory::TempDir dir;
    auto base = std::filesystem::canonical(dir.path()) / "a dir";
    std::filesystem::create_directories(base / "inner");
    if (::mount("tmpfs", base.c_str(), "tmpfs", 0, nullptr) != 0)
        GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
    std::filesystem::create_directories(base / "inner");
    ASSERT_EQ(::mount("tmpfs", (base / "inner").c_str(), "tmpfs", 0, nullptr), 0);
    auto found = factory::mounts_under(dir.path());
    EXPECT_TRUE(factory::mounts_under(base.parent_path() / "a").empty());
    ::umount2((base / "inner").c_str(), MNT_DETACH);
    ::umount2(base.c_str(), MNT_DETACH);
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0], base / "inner");
    EXPECT_EQ(found[1], base);
}
