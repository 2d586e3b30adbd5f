// runtime/process.hpp: pump_lines, the one reader of a child's output by lines.
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "factory/runtime/process.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

using namespace factory;

namespace {

struct Pipe {
    Fd rd, wr;
    Pipe() {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        rd = Fd(p[0]);
        wr = Fd(p[1]);
    }
};

} // namespace

TEST(PumpLines, SplitsLinesAndCutsLongOnes) {
    Pipe p;
    std::string text = "one\ntwo\n" + std::string(70000, 'x') + "\nlast without newline";
    std::thread writer([&] {
        (void)write_all(p.wr.get(), text.data(), text.size());
        p.wr.reset();
    });
    std::vector<std::string> lines;
    bool killed = runtime::pump_lines(
        p.rd.get(), nullptr, [] { FAIL() << "no cancel, no kill"; },
        [&](std::string_view l) { lines.emplace_back(l); });
    writer.join();
    EXPECT_FALSE(killed);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[0], "one");
    EXPECT_EQ(lines[1], "two");
    EXPECT_EQ(lines[2], std::string(65536, 'x'));
    EXPECT_EQ(lines[3], std::string(70000 - 65536, 'x'));
    EXPECT_EQ(lines[4], "last without newline");
}

TEST(PumpLines, CancelKillsOnceAndReadsToTheEnd) {
    Pipe p;
    std::atomic<bool> cancel = false;
    int kills = 0;
    std::vector<std::string> lines;
    std::thread writer([&] {
        (void)write_all(p.wr.get(), "before\n", 7);
        while (!cancel.load())
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        std::this_thread::sleep_for(std::chrono::milliseconds(300)); // kill() is not repeated
        (void)write_all(p.wr.get(), "after kill\n", 11);
        p.wr.reset();
    });
    bool killed = runtime::pump_lines(
        p.rd.get(), &cancel, [&] { ++kills; },
        [&](std::string_view l) {
            lines.emplace_back(l);
            cancel = true;
        });
    writer.join();
    EXPECT_TRUE(killed);
    EXPECT_EQ(kills, 1);
    EXPECT_EQ(lines, (std::vector<std::string>{"before", "after kill"}));
}
