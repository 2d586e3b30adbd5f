#pragma once
// The date of a Debian mirror's suite (docs/lockfile.md "Debian bases"): the `Date:` field of
// MIRROR/dists/SUITE/InRelease (or Release), which the archive rewrites whenever the suite
// changes. With the installed packages it pins a Debian base: a mirror whose date moved may
// serve other versions, and a snapshot archive (snapshot.debian.org/archive/debian/TIME) keeps
// one date for ever.

#include <string>
#include <string_view>

#include "factory/sources/download.hpp"
#include "factory/util/error.hpp"

namespace factory::sources {

// The Date field of a Release or InRelease file (the clear-signed text is read as it is; the
// signature is not checked: the date pins, apt verifies), as RFC 3339 UTC
// "2024-11-09T10:12:04Z". Debian writes RFC 2822 dates ("Sat, 09 Nov 2024 10:12:04 UTC");
// the weekday is optional, the zone is UTC, GMT, Z or ±HHMM. Errors: no Date field, a date
// that doesn't parse (quoted).
Result<std::string> release_date(std::string_view release_text);

// Fetches MIRROR/dists/SUITE/InRelease (Release when the mirror has no InRelease) with
// factory's HTTP client and returns its release_date(). Errors name the URL; under
// options.offline nothing is asked and it fails.
Result<std::string> fetch_release_date(const std::string& mirror, const std::string& suite,
                                       const DownloadOptions& options);

// "2024-11-09T10:12:04Z" → "20241109T101204Z", the form snapshot.debian.org's URLs use.
std::string snapshot_time(std::string_view rfc3339);

} // namespace factory::sources
