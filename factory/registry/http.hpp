#pragma once
// One HTTP exchange over libcurl, nothing more: no retries, no auth, no redirects followed
// (client.hpp does those, so that it decides who gets the credentials). Connections, DNS answers
// and TLS sessions are shared between the threads that use one Http (curl share interface).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "factory/registry/retry.hpp"
#include "factory/util/error.hpp"

namespace factory::registry {

namespace fs = std::filesystem;

struct TlsOptions {
    bool verify = true; // false: no certificate or host name check (and plain HTTP allowed)
    fs::path ca_file;   // extra CA bundle (PEM) instead of the system's; empty: system CAs
};

struct HttpRequest {
    std::string method = "GET"; // GET, HEAD, PUT, POST, PATCH, DELETE
    std::string url;
    std::vector<std::string> headers; // "Name: value"
    std::string body;                 // request body (PUT/POST/PATCH), unless body_fd is set
    int body_fd = -1;                 // stream the body from this file (pread from body_offset)
    std::uint64_t body_size = 0;      // bytes of body_fd
    std::uint64_t body_offset = 0;    // where in body_fd the body starts (a chunk of a blob)
    // Called with the number of body bytes handed to curl, as they go (upload progress).
    std::function<void(std::uint64_t)> on_sent;
    // Receives the body of a 2xx answer chunk by chunk (instead of HttpResponse::body), with the
    // response's status and headers; false aborts the transfer (HttpResponse::aborted is set).
    std::function<bool(const struct HttpResponse&, const char*, std::size_t)> on_body;
    std::uint64_t max_body = 4u << 20; // a collected body larger than this aborts the transfer
};

struct HttpResponse {
    long status = 0;                            // 0: no HTTP answer (see curl_error)
    std::map<std::string, std::string> headers; // lower-case names; repeats joined by ", "
    std::string body;           // a 2xx body without on_body; an error body (first 64 KiB)
    int curl_code = 0;          // CURLcode of a failed transfer, 0 on success
    std::string curl_error;     // curl's message for it
    bool too_large = false;     // the body passed max_body
    bool aborted = false;       // on_body returned false
    std::uint64_t received = 0; // body bytes received (after headers)

    std::string header(const std::string& lower_name) const;
    bool ok() const { return curl_code == 0 && status >= 200 && status < 300; }
    // True for a transport failure worth retrying (refused, reset, timeout, stall, truncated).
    bool retryable_transport() const;
    // True when the transfer timed out: no byte moved for the stall timeout in any phase.
    bool timed_out() const;
    // "HTTP 503" or the curl error, for messages.
    std::string describe() const;
};

class Http {
  public:
    // stall_timeout: a transfer moving no byte for this long, in any phase (connect, TLS
    // handshake, waiting for the answer, body), fails (CURLE_OPERATION_TIMEDOUT, timed_out()).
    // connect_timeout bounds the connect phase too (the smaller of the two applies).
    Http(TlsOptions tls, Seconds connect_timeout = Seconds(30),
         Seconds stall_timeout = Seconds(30));
    ~Http();
    Http(const Http&) = delete;
    Http& operator=(const Http&) = delete;

    // Performs one request; never throws for network or HTTP errors (they are in the response).
    HttpResponse send(const HttpRequest& req);

    const TlsOptions& tls() const noexcept { return tls_; }

  private:
    struct Share;
    TlsOptions tls_;
    Seconds connect_timeout_, stall_timeout_;
    std::unique_ptr<Share> share_;
};

// URL parts, through libcurl's URL parser.
struct Url {
    std::string scheme, host, port, path_and_query;
    // scheme://host[:port], the origin that credentials are bound to.
    std::string origin() const;
};
Result<Url> parse_url(const std::string& url);
// Resolves location (absolute, or relative to base) into an absolute URL.
Result<std::string> resolve_url(const std::string& base, const std::string& location);
// Percent-encodes a query parameter value.
std::string url_escape(std::string_view s);

} // namespace factory::registry
