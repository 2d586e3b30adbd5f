// Shared main for the unit tests: each test gets its own temp dir (test_dir()), kept when the
// test fails so the state can be inspected.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
