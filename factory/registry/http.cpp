#include "factory/registry/http.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <signal.h>

#include "factory/util/curl_loader.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::registry {

namespace {

constexpr std::size_t max_error_body = 64u << 10;

struct CurlFree {
    void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
    void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};
using EasyPtr = std::unique_ptr<CURL, CurlFree>;
using SlistPtr = std::unique_ptr<curl_slist, CurlFree>;
using UrlPtr = std::unique_ptr<CURLU, CurlFree>;

// curl_global_init is not thread-safe; run it once, before any thread uses curl. SIGPIPE is
// ignored for the process: a peer closing a connection (or a credential helper exiting early)
// must be an error to handle, not the end of factory.
void global_init() {
    static const bool done = [] {
        ::signal(SIGPIPE, SIG_IGN);
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    }();
    if (!done) {
        std::string why = curl_load_error();
        throw Error(why.empty() ? "libcurl: global initialization failed" : why);
    }
}

using Clock = std::chrono::steady_clock;

struct Transfer {
    const HttpRequest* req;
    HttpResponse* resp;
    CURL* easy;
    Seconds stall_limit;
    std::uint64_t upload_offset = 0;
    bool status_seen = false;
    // Stall detection (on_progress): the bytes moved so far and when the last one did.
    curl_off_t moved = 0;
    Clock::time_point last_move = Clock::now();
    bool stalled = false;
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* p) {
    auto* t = static_cast<Transfer*>(p);
    t->last_move = Clock::now(); // headers are progress too (on_progress counts body bytes)
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
        t->resp->headers.clear(); // a new response (after 100 Continue)
        return size * n;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    auto name = lower(trim(line.substr(0, colon)));
    auto value = std::string(trim(line.substr(colon + 1)));
    auto [it, inserted] = t->resp->headers.emplace(name, value);
    if (!inserted && it->second.size() < (64u << 10)) it->second += ", " + value;
    return size * n;
}

std::size_t on_write(char* data, std::size_t size, std::size_t n, void* p) {
    auto* t = static_cast<Transfer*>(p);
    std::size_t len = size * n;
    if (!t->status_seen) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->resp->status);
        t->status_seen = true;
    }
    t->resp->received += len;
    bool success = t->resp->status >= 200 && t->resp->status < 300;
    if (success && t->req->on_body) {
        if (!t->req->on_body(*t->resp, data, len)) {
            t->resp->aborted = true;
            return 0;
        }
        return len;
    }
    if (success) {
        if (t->resp->body.size() + len > t->req->max_body) {
            t->resp->too_large = true;
            return 0;
        }
        t->resp->body.append(data, len);
    } else if (t->resp->body.size() < max_error_body) {
        t->resp->body.append(data, std::min(len, max_error_body - t->resp->body.size()));
    }
    return len;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* p) {
    auto* t = static_cast<Transfer*>(p);
    std::size_t want = size * n;
    const auto& req = *t->req;
    if (req.body_fd >= 0) {
        if (t->upload_offset >= req.body_size) return 0;
        want = static_cast<std::size_t>(
            std::min<std::uint64_t>(want, req.body_size - t->upload_offset));
        for (;;) {
            auto got = ::pread(req.body_fd, buffer, want,
                               static_cast<off_t>(req.body_offset + t->upload_offset));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return CURL_READFUNC_ABORT;
            t->upload_offset += static_cast<std::uint64_t>(got);
            if (req.on_sent) req.on_sent(static_cast<std::uint64_t>(got));
            return static_cast<std::size_t>(got);
        }
    }
    if (t->upload_offset >= req.body.size()) return 0;
    want = std::min<std::size_t>(want, req.body.size() - t->upload_offset);
    std::copy_n(req.body.data() + t->upload_offset, want, buffer);
    t->upload_offset += want;
    return want;
}

// Called about once a second, and on every chunk, in every phase (connect, TLS handshake,
// waiting for the answer, body): a transfer stops when the command is interrupted
// (util/interrupt.hpp), even one that is waiting for the other end, and when no byte has moved
// for stall_limit. curl's own CURLOPT_LOW_SPEED_TIME is not enough for the second: it measures
// the rate averaged over the last ~5 seconds, so a body that stops after a fast start is only
// noticed 5-6 s late, and it does not cover the connect and TLS phases.
int on_progress(void* p, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
    if (interrupted()) return 1;
    auto* t = static_cast<Transfer*>(p);
    auto now = Clock::now();
    if (dlnow + ulnow != t->moved) {
        t->moved = dlnow + ulnow;
        t->last_move = now;
    } else if (now - t->last_move >= t->stall_limit) {
        t->stalled = true;
        return 1;
    }
    return 0;
}

// Rewinding a body for curl's own resend (after a 100-continue or a reused dead connection).
int on_seek(void* p, curl_off_t offset, int origin) {
    auto* t = static_cast<Transfer*>(p);
    if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
    t->upload_offset = static_cast<std::uint64_t>(offset);
    return CURL_SEEKFUNC_OK;
}

void set_method(CURL* c, const HttpRequest& req) {
    std::uint64_t size = req.body_fd >= 0 ? req.body_size : req.body.size();
    if (req.method == "GET") return;
    if (req.method == "HEAD") {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        return;
    }
    if (req.method == "PUT") {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
        return;
    }
    // POST, PATCH, DELETE: a POST with the read callback as its body.
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
    if (req.method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
}

} // namespace

struct Http::Share {
    CURLSH* sh = nullptr;
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;
    static void lock(CURL*, curl_lock_data d, curl_lock_access, void* p) {
        static_cast<Share*>(p)->locks[static_cast<std::size_t>(d)].lock();
    }
    static void unlock(CURL*, curl_lock_data d, void* p) {
        static_cast<Share*>(p)->locks[static_cast<std::size_t>(d)].unlock();
    }
    Share() {
        sh = curl_share_init();
        if (!sh) throw Error("libcurl: curl_share_init failed");
        curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, &Share::lock);
        curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, &Share::unlock);
        curl_share_setopt(sh, CURLSHOPT_USERDATA, this);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    ~Share() { curl_share_cleanup(sh); }
};

Http::Http(TlsOptions tls, Seconds connect_timeout, Seconds stall_timeout)
    : tls_(std::move(tls)), connect_timeout_(connect_timeout), stall_timeout_(stall_timeout) {
    global_init();
    share_ = std::make_unique<Share>();
}

Http::~Http() = default;

HttpResponse Http::send(const HttpRequest& req) {
    HttpResponse resp;
    EasyPtr easy(curl_easy_init());
    if (!easy) {
        resp.curl_code = CURLE_FAILED_INIT;
        resp.curl_error = "curl_easy_init failed";
        return resp;
    }
    CURL* c = easy.get();
    Transfer t{&req, &resp, c, stall_timeout_};
    char errbuf[CURL_ERROR_SIZE] = {0};
    SlistPtr headers;
    for (const auto& h : req.headers)
        headers.reset(curl_slist_append(headers.release(), h.c_str()));
    // No "Expect: 100-continue" round trip before uploads: registries answer at once.
    headers.reset(curl_slist_append(headers.release(), "Expect:"));
    curl_easy_setopt(c, CURLOPT_SHARE, share_->sh);
    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_USERAGENT, "factory");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, &on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, &on_seek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    // The connect phase includes the TLS handshake: a server that accepts the connection and
    // never answers costs stall_timeout, not the longer connect_timeout.
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(connect_timeout_, stall_timeout_).count() * 1000));
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L << 10);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 512L << 10);
    if (!tls_.verify) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!tls_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls_.ca_file.c_str());
    set_method(c, req);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
    if (rc != CURLE_OK && t.stalled) {
        char msg[96];
        std::snprintf(msg, sizeof msg, "stalled: no byte sent or received for %gs",
                      stall_timeout_.count());
        resp.curl_code = CURLE_OPERATION_TIMEDOUT;
        resp.curl_error = msg;
    } else if (rc != CURLE_OK) {
        resp.curl_code = rc;
        resp.curl_error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        while (!resp.curl_error.empty() && resp.curl_error.back() == '\n')
            resp.curl_error.pop_back();
    }
    return resp;
}

std::string HttpResponse::header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
}

bool HttpResponse::retryable_transport() const {
    if (curl_code == 0 || aborted || too_large) return false;
    switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return true;
    default:
        return false; // TLS verification, bad URL, protocol not allowed …
    }
}

bool HttpResponse::timed_out() const {
    return curl_code == CURLE_OPERATION_TIMEDOUT;
}

std::string HttpResponse::describe() const {
    if (too_large) return "response body too large";
    if (curl_code != 0) return curl_error.empty() ? "transfer failed" : curl_error;
    return "HTTP " + std::to_string(status);
}

std::string Url::origin() const {
    return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

namespace {

std::string url_part(CURLU* u, CURLUPart part) {
    char* s = nullptr;
    if (curl_url_get(u, part, &s, 0) != CURLUE_OK || !s) return {};
    std::string out(s);
    curl_free(s);
    return out;
}

} // namespace

Result<Url> parse_url(const std::string& url) {
    global_init();
    UrlPtr u(curl_url());
    if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
        return Unexpected("malformed URL");
    Url out;
    out.scheme = lower(url_part(u.get(), CURLUPART_SCHEME));
    out.host = lower(url_part(u.get(), CURLUPART_HOST));
    out.port = url_part(u.get(), CURLUPART_PORT);
    out.path_and_query = url_part(u.get(), CURLUPART_PATH);
    auto q = url_part(u.get(), CURLUPART_QUERY);
    if (!q.empty()) out.path_and_query += "?" + q;
    if (out.scheme != "http" && out.scheme != "https")
        return Unexpected("URL scheme '" + out.scheme + "' is not http or https");
    return out;
}

Result<std::string> resolve_url(const std::string& base, const std::string& location) {
    global_init();
    UrlPtr u(curl_url());
    if (!u || curl_url_set(u.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK ||
        curl_url_set(u.get(), CURLUPART_URL, location.c_str(), 0) != CURLUE_OK)
        return Unexpected("malformed Location");
    return url_part(u.get(), CURLUPART_URL);
}

std::string url_escape(std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out.push_back(static_cast<char>(c));
        else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

} // namespace factory::registry
