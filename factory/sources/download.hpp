#pragma once
// Downloads verified by their sha256 and cached by it (docs/recipe.md "download"): a file is
// fetched once (libcurl, http and https only, redirects followed to http(s) only), hashed while
// it streams into a temp file of the store, and kept as STORE/downloads/<hex> only when it
// hashes to what the recipe says. A wrong digest is an error naming both digests; nothing is
// stored. Credentials in the URL are sent to its host only (libcurl drops them on a redirect
// to another host) and never printed.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "factory/util/error.hpp"

namespace factory::sources {

namespace fs = std::filesystem;

struct DownloadOptions {
    bool offline = false;                         // only what the store holds
    int attempts = 3;                             // tries on a network error, a 5xx or a 429
    std::chrono::milliseconds backoff{1000};      // before the 2nd try; doubled each time after
    fs::path ca_bundle;                           // empty: libcurl's default store
    std::uint64_t max_bytes = 16ull << 30;        // refused past this many bytes
    std::function<void(std::string_view)> on_log; // one line per fetch and retry
};

// STORE/downloads/<hex>.
fs::path download_path(const fs::path& store_root, std::string_view sha256_hex);

// The file whose sha256 is `sha256_hex` (64 lower-case hex digits), fetched from `url` unless
// the store has it. Errors (the URL printed without credentials): "download URL: sha256
// mismatch: expected sha256:A, got sha256:B" (nothing stored), HTTP and network errors after
// the last try, "offline: …" when the store lacks it.
Result<fs::path> fetch_download(const fs::path& store_root, const std::string& url,
                                const std::string& sha256_hex, const DownloadOptions& options);

// The body of a small document at `url` (at most options.max_bytes), held in memory and not
// stored, with the same retries as a download. Errors: "URL: HTTP 404", network errors after
// the last try, "offline: cannot fetch URL" under options.offline (nothing is asked).
Result<std::string> fetch_text(const std::string& url, const DownloadOptions& options);

// The URL without "user:password@", for messages.
std::string printable_url(const std::string& url);

} // namespace factory::sources
