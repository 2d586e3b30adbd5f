#pragma once
// When and how long to wait before trying a registry request again: exponential backoff with
// jitter, bounded in attempts and in total time, honouring Retry-After (RFC 9110 §10.2.3).
//
// Retried: connection errors (refused, reset, timed out, stalled, truncated body), 408, 429 and
// 5xx except 501 and 505. Never: other 4xx (401, 403, 404 …), TLS verification failures, a
// digest mismatch — trying again can't change those answers.

#include <chrono>
#include <optional>
#include <random>
#include <string_view>

namespace factory::registry {

using Seconds = std::chrono::duration<double>;

struct RetryPolicy {
    int max_attempts = 5;       // attempts in all, the first included (1 = no retry)
    Seconds max_total{120};     // no new attempt starts after this much time since the first
    Seconds initial_delay{0.5}; // the wait before the 2nd attempt; it doubles each time
    Seconds max_delay{30};      // cap of one wait (a longer Retry-After is capped too)
};

// True if an HTTP status is worth another attempt.
bool retryable_status(long status) noexcept;

// Parses a Retry-After value: delay-seconds or an IMF-fixdate HTTP-date (relative to now).
// nullopt if it is neither.
std::optional<Seconds>
parse_retry_after(std::string_view value,
                  std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The wait before attempt number `next_attempt` (2 for the first retry): initial·2^(n-2), capped
// at max_delay, scaled by a random factor in [0.5, 1] ("equal jitter"), or Retry-After (capped)
// when the server gave one.
Seconds backoff_delay(const RetryPolicy& policy, int next_attempt,
                      std::optional<Seconds> retry_after, std::mt19937_64& rng);

} // namespace factory::registry
