#include "factory/sources/download.hpp"

#include <curl/curl.h>

#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "cache/blob_store.hpp"
#include "factory/sources/remote_url.hpp"
#include "factory/util/curl_loader.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"
#include "factory/util/sha256.hpp"

namespace factory::sources {

namespace {

struct CurlFree {
    void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Sink {
    std::function<Result<void>(const char*, std::size_t)> write;
    Sha256 hash;
    std::uint64_t bytes = 0, max_bytes = 0;
    std::string error;
};

// A transfer stops when the command is interrupted (util/interrupt.hpp).
int on_progress(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return interrupted() ? 1 : 0;
}

std::size_t on_data(char* data, std::size_t size, std::size_t n, void* user) {
    auto* s = static_cast<Sink*>(user);
    std::size_t len = size * n;
    s->bytes += len;
    if (s->bytes > s->max_bytes) {
        s->error = "larger than " + std::to_string(s->max_bytes) + " bytes";
        return 0;
    }
    s->hash.update(data, len);
    if (auto r = s->write(data, len); !r) {
        s->error = r.error();
        return 0;
    }
    return len;
}

struct Attempt {
    bool retry = false; // a transient failure
    std::string error;  // empty: success
};

// One GET, its body handed to `write`; the digest in `hex`.
Attempt get(const std::string& url, const DownloadOptions& o,
            std::function<Result<void>(const char*, std::size_t)> write, std::string& hex) {
    std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
    if (!curl) {
        std::string why = curl_load_error();
        return {false, why.empty() ? "cannot initialize libcurl" : why};
    }
    Sink sink{std::move(write), Sha256(), 0, o.max_bytes, {}};
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    // A stalled transfer: under 1 byte/s for 60 s.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "factory");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (!o.ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o.ca_bundle.c_str());
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        if (!sink.error.empty()) return {false, sink.error};
        std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        bool transient = rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
                         rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
                         rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
                         rc == CURLE_COULDNT_RESOLVE_HOST;
        return {transient, why};
    }
    if (status >= 400) {
        bool transient = status == 408 || status == 429 || status >= 500;
        return {transient, "HTTP " + std::to_string(status)};
    }
    hex = sink.hash.hex_digest();
    return {};
}

} // namespace

fs::path download_path(const fs::path& store_root, std::string_view sha256_hex) {
    return store_root / "downloads" / std::string(sha256_hex);
}

std::string printable_url(const std::string& url) {
    auto r = parse_remote_url(url);
    return r ? r->url : std::string("(an invalid URL)");
}

Result<fs::path> fetch_download(const fs::path& store_root, const std::string& url,
                                const std::string& sha256_hex, const DownloadOptions& options) {
    std::string shown = printable_url(url);
    if (!cache::is_sha256_hex(sha256_hex))
        return Unexpected("download " + shown + ": sha256 must be 64 lower-case hex digits");
    fs::path target = download_path(store_root, sha256_hex);
    if (fs::is_regular_file(target)) return target;
    if (options.offline)
        return Unexpected("offline: download " + shown + " (sha256:" + sha256_hex +
                          ") is not in the store");
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec)
        return Unexpected("cannot create " + target.parent_path().string() + ": " + ec.message());
    global_init();
    auto delay = options.backoff;
    for (int attempt = 1;; ++attempt) {
        if (options.on_log) options.on_log("download: fetching " + shown);
        // A fresh temp file per try: it is removed unless committed.
        AtomicFile file(target);
        std::string hex;
        Attempt a = get(
            url, options,
            [&file](const char* data, std::size_t n) { return write_all(file.fd(), data, n); },
            hex);
        if (a.error.empty()) {
            if (hex != sha256_hex)
                return Unexpected("download " + shown + ": sha256 mismatch: expected sha256:" +
                                  sha256_hex + ", got sha256:" + hex + " (nothing was stored)");
            file.commit();
            return target;
        }
        if (!a.retry || attempt >= options.attempts)
            return Unexpected("download " + shown + ": " + a.error);
        if (options.on_log)
            options.on_log("download " + shown + ": " + a.error + "; trying again in " +
                           std::to_string(delay.count()) + " ms");
        if (!sleep_unless_interrupted(delay)) return Unexpected(interrupted_error().what());
        delay *= 2;
    }
}

Result<std::string> fetch_text(const std::string& url, const DownloadOptions& options) {
    std::string shown = printable_url(url);
    if (options.offline) return Unexpected("offline: cannot fetch " + shown);
    global_init();
    auto delay = options.backoff;
    for (int attempt = 1;; ++attempt) {
        if (options.on_log) options.on_log("fetching " + shown);
        std::string body, hex;
        Attempt a = get(
            url, options,
            [&body](const char* data, std::size_t n) -> Result<void> {
                body.append(data, n);
                return {};
            },
            hex);
        if (a.error.empty()) return body;
        if (!a.retry || attempt >= options.attempts) return Unexpected(shown + ": " + a.error);
        if (options.on_log)
            options.on_log(shown + ": " + a.error + "; trying again in " +
                           std::to_string(delay.count()) + " ms");
        if (!sleep_unless_interrupted(delay)) return Unexpected(interrupted_error().what());
        delay *= 2;
    }
}

} // namespace factory::sources
