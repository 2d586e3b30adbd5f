// Which answers are retried, how long the waits are, and Retry-After.
#include <gtest/gtest.h>

#include "factory/registry/retry.hpp"

using namespace factory::registry;

TEST(RegistryRetry, RetriesOnlyWhatCanChange) {
    for (long s : {408L, 429L, 500L, 502L, 503L, 504L})
        EXPECT_TRUE(retryable_status(s)) << s;
    for (long s : {200L, 201L, 400L, 401L, 403L, 404L, 405L, 413L, 416L, 501L, 505L})
        EXPECT_FALSE(retryable_status(s)) << s;
}

TEST(RegistryRetry, BackoffDoublesWithJitterAndCaps) {
    RetryPolicy p;
    p.initial_delay = Seconds(1);
    p.max_delay = Seconds(5);
    std::mt19937_64 rng(42);
    for (int i = 0; i < 50; ++i) {
        auto d2 = backoff_delay(p, 2, std::nullopt, rng).count();
        auto d3 = backoff_delay(p, 3, std::nullopt, rng).count();
        auto d9 = backoff_delay(p, 9, std::nullopt, rng).count();
        EXPECT_GE(d2, 0.5);
        EXPECT_LE(d2, 1.0);
        EXPECT_GE(d3, 1.0);
        EXPECT_LE(d3, 2.0);
        EXPECT_GE(d9, 2.5);
        EXPECT_LE(d9, 5.0);
    }
}

TEST(RegistryRetry, HonoursRetryAfterCappedAtTheMaximum) {
    RetryPolicy p;
    p.max_delay = Seconds(10);
    std::mt19937_64 rng(1);
    EXPECT_DOUBLE_EQ(backoff_delay(p, 2, Seconds(3), rng).count(), 3.0);
    EXPECT_DOUBLE_EQ(backoff_delay(p, 2, Seconds(300), rng).count(), 10.0);
}

TEST(RegistryRetry, ParsesRetryAfterSecondsAndDates) {
    EXPECT_DOUBLE_EQ(parse_retry_after("7")->count(), 7.0);
    EXPECT_DOUBLE_EQ(parse_retry_after(" 0 ")->count(), 0.0);
    auto now = std::chrono::system_clock::from_time_t(784111777); // Sun, 06 Nov 1994 08:49:37
    EXPECT_DOUBLE_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now)->count(), 10.0);
    EXPECT_DOUBLE_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now)->count(), 0.0);
    EXPECT_FALSE(parse_retry_after(""));
    EXPECT_FALSE(parse_retry_after("soon"));
    EXPECT_FALSE(parse_retry_after("-3"));
    EXPECT_FALSE(parse_retry_after("1.5"));
}
