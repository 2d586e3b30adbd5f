// Rootless helpers (runtime/rootless.hpp): reading /etc/subuid-style ranges and the id map
// that keeps the caller's own id. Entering a namespace is tested end to end by
// tests/integration/rootless.sh (it needs a user with subordinate ids).
#include "factory/runtime/rootless.hpp"

#include <gtest/gtest.h>

using namespace factory::runtime;

namespace {

std::string map_text(const std::vector<IdMapping>& map) {
    std::string out;
    for (const auto& m : map)
        out += std::to_string(m.inside) + " " + std::to_string(m.outside) + " " +
               std::to_string(m.count) + "\n";
    return out;
}

} // namespace

TEST(RootlessSubids, ByNameOrIdTheLargestRange) {
    const char* text = "alice:100000:65536\n"
                       "bob:165536:1000\n"
                       "1002:300000:70000\n"
                       "bob:400000:65536\n"
                       "broken line\n"
                       "bob:x:65536\n"
                       "bob:4294967000:65536\n";
    auto alice = find_subid_range(text, "alice", 1000);
    ASSERT_TRUE(alice);
    EXPECT_EQ(alice->start, 100000u);
    EXPECT_EQ(alice->count, 65536u);
    auto bob = find_subid_range(text, "bob", 1001);
    ASSERT_TRUE(bob);
    EXPECT_EQ(bob->start, 400000u) << "the largest of bob's ranges; malformed ones ignored";
    auto by_id = find_subid_range(text, "carol", 1002);
    ASSERT_TRUE(by_id);
    EXPECT_EQ(by_id->start, 300000u);
    EXPECT_FALSE(find_subid_range(text, "dave", 1003));
    EXPECT_FALSE(find_subid_range("", "alice", 1000));
    EXPECT_FALSE(find_subid_range("alice:100000:0\n", "alice", 1000));
}

TEST(RootlessIdMap, TheCallerKeepsItsIdAndTheRangeFillsTheRest) {
    EXPECT_EQ(map_text(rootless_id_map(1000, {100000, 65536})),
              "0 100000 1000\n1000 1000 1\n1001 101000 64535\n");
    EXPECT_EQ(map_text(rootless_id_map(0, {100000, 65536})), "0 0 1\n1 100000 65535\n");
    EXPECT_EQ(map_text(rootless_id_map(65535, {100000, 65536})), "0 100000 65535\n65535 65535 1\n");
    // A caller above the range: 0..count-1 is the range, the caller itself beyond it.
    EXPECT_EQ(map_text(rootless_id_map(70000, {100000, 65536})), "0 100000 65536\n70000 70000 1\n");
}

TEST(RootlessIdMap, EveryIdBelowTheRangeSizeIsMappedOnce) {
    for (std::uint32_t caller : {0u, 1u, 1000u, 65534u, 65535u, 65536u, 1000000u}) {
        auto map = rootless_id_map(caller, {200000, 65536});
        std::vector<int> inside(65536, 0);
        bool caller_itself = false;
        for (const auto& m : map)
            for (std::uint32_t i = 0; i < m.count; ++i) {
                if (m.inside + i < inside.size()) ++inside[m.inside + i];
                if (m.inside + i == caller) caller_itself = m.outside + i == caller;
            }
        for (std::size_t i = 0; i < inside.size(); ++i)
            ASSERT_EQ(inside[i], 1) << "caller " << caller << ", id " << i;
        EXPECT_TRUE(caller_itself) << caller;
        EXPECT_LE(map.size(), 3u);
    }
}

TEST(Rootless, TheMarkerAloneIsNotAUserNamespace) {
    if (in_user_namespace()) GTEST_SKIP() << "already in a user namespace";
    ::setenv("FACTORY_ROOTLESS", "1000:1000", 1);
    EXPECT_FALSE(rootless_caller());
    ::unsetenv("FACTORY_ROOTLESS");
}
