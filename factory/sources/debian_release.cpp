#include "factory/sources/debian_release.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <vector>

namespace factory::sources {

namespace {

// The value of the first `Date:` line of the Release paragraph. A clear-signed InRelease
// starts with "-----BEGIN PGP SIGNED MESSAGE-----" and armor headers ("Hash: SHA512") before an
// empty line; the paragraph follows, and ends at the next empty line or the signature.
std::optional<std::string> date_field(std::string_view text) {
    bool signed_text = text.starts_with("-----BEGIN PGP SIGNED MESSAGE-----");
    bool in_body = !signed_text;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        auto line = text.substr(pos, end - pos);
        pos = end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!in_body) {
            if (line.empty()) in_body = true;
            continue;
        }
        if (line.starts_with("-----BEGIN PGP SIGNATURE-----")) break;
        if (line.empty()) break;
        if (line.size() > 5 && line.substr(0, 5) == "Date:") {
            auto value = line.substr(5);
            while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
                value.remove_prefix(1);
            while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
                value.remove_suffix(1);
            return std::string(value);
        }
    }
    return std::nullopt;
}

int month_number(std::string_view m) {
    static constexpr std::array<std::string_view, 12> names = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (std::size_t i = 0; i < names.size(); ++i)
        if (names[i] == m) return static_cast<int>(i) + 1;
    return 0;
}

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// The words of s, split at spaces.
std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ')
            ++i;
        auto j = s.find(' ', i);
        if (j == std::string_view::npos) j = s.size();
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

// RFC 2822 §3.3 "[day-name ","] day month year hh:mm:ss zone" → seconds since the epoch.
std::optional<std::int64_t> parse_rfc2822(std::string_view value) {
    auto w = words(value);
    if (!w.empty() && w[0].size() == 4 && w[0].back() == ',') w.erase(w.begin());
    if (w.size() != 5) return std::nullopt;
    int month = month_number(w[1]);
    if (!all_digits(w[0]) || w[0].size() > 2 || !month || !all_digits(w[2]) || w[2].size() != 4)
        return std::nullopt;
    auto t = w[3];
    if (t.size() != 8 || t[2] != ':' || t[5] != ':' || !all_digits(t.substr(0, 2)) ||
        !all_digits(t.substr(3, 2)) || !all_digits(t.substr(6, 2)))
        return std::nullopt;
    int offset = 0; // seconds east of UTC
    auto zone = w[4];
    if (zone == "UTC" || zone == "GMT" || zone == "Z" || zone == "UT") {
    } else if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-') &&
               all_digits(zone.substr(1))) {
        int hh = std::stoi(std::string(zone.substr(1, 2))),
            mm = std::stoi(std::string(zone.substr(3, 2)));
        if (mm > 59) return std::nullopt;
        offset = (zone[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
    } else {
        return std::nullopt;
    }
    std::tm tm{};
    tm.tm_mday = std::stoi(std::string(w[0]));
    tm.tm_mon = month - 1;
    tm.tm_year = std::stoi(std::string(w[2])) - 1900;
    tm.tm_hour = std::stoi(std::string(t.substr(0, 2)));
    tm.tm_min = std::stoi(std::string(t.substr(3, 2)));
    tm.tm_sec = std::stoi(std::string(t.substr(6, 2)));
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return std::nullopt;
    std::tm check = tm;
    std::int64_t secs = ::timegm(&check);
    if (check.tm_mday != tm.tm_mday) return std::nullopt; // "31 Feb"
    return secs - offset;
}

} // namespace

Result<std::string> release_date(std::string_view release_text) {
    auto value = date_field(release_text);
    if (!value) return Unexpected("no Date field");
    auto secs = parse_rfc2822(*value);
    if (!secs) return Unexpected("invalid Date \"" + *value + "\"");
    std::time_t t = static_cast<std::time_t>(*secs);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64]; // room for any int the fields could hold
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return std::string(buf);
}

Result<std::string> fetch_release_date(const std::string& mirror, const std::string& suite,
                                       const DownloadOptions& options) {
    std::string base = mirror;
    while (base.ends_with('/'))
        base.pop_back();
    base += "/dists/" + suite + "/";
    auto text = fetch_text(base + "InRelease", options);
    // Release is what a mirror without a signed InRelease (older tools, some caches) serves.
    if (!text && text.error().ends_with("HTTP 404")) text = fetch_text(base + "Release", options);
    if (!text) return Unexpected(text.error());
    auto date = release_date(*text);
    if (!date) return Unexpected(printable_url(base) + "InRelease: " + date.error());
    return date;
}

std::string snapshot_time(std::string_view rfc3339) {
    std::string out;
    for (char c : rfc3339)
        if (c != '-' && c != ':') out += c;
    return out;
}

} // namespace factory::sources
