#include "factory/registry/retry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <string>

namespace factory::registry {

bool retryable_status(long status) noexcept {
    if (status == 408 || status == 429) return true;
    // 501 Not Implemented and 505 HTTP Version Not Supported won't change on their own.
    return status >= 500 && status <= 599 && status != 501 && status != 505;
}

std::optional<Seconds> parse_retry_after(std::string_view value,
                                         std::chrono::system_clock::time_point now) {
    while (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ')
        value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        unsigned long long n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || p != value.data() + value.size()) return std::nullopt;
        return Seconds(static_cast<double>(std::min(n, 86400ull)));
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    std::tm tm{};
    std::string s(value);
    const char* end = ::strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0') return std::nullopt;
    auto when = std::chrono::system_clock::from_time_t(::timegm(&tm));
    auto delta = std::chrono::duration_cast<Seconds>(when - now);
    return std::max(delta, Seconds(0));
}

Seconds backoff_delay(const RetryPolicy& policy, int next_attempt,
                      std::optional<Seconds> retry_after, std::mt19937_64& rng) {
    if (retry_after) return std::min(*retry_after, policy.max_delay);
    double base = policy.initial_delay.count() * std::pow(2.0, std::max(0, next_attempt - 2));
    base = std::min(base, policy.max_delay.count());
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return Seconds(base * jitter(rng));
}

} // namespace factory::registry
