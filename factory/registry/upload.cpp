#include "factory/registry/upload.hpp"

#include <charconv>
#include <optional>

namespace factory::registry {

std::optional<std::uint64_t> upload_range_end(std::string_view range) {
    if (range.starts_with("bytes=")) range.remove_prefix(6);
    auto dash = range.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    std::uint64_t first = 0, last = 0;
    auto a = range.substr(0, dash), b = range.substr(dash + 1);
    if (a.empty() || b.empty()) return std::nullopt;
    auto ra = std::from_chars(a.data(), a.data() + a.size(), first);
    auto rb = std::from_chars(b.data(), b.data() + b.size(), last);
    if (ra.ec != std::errc() || ra.ptr != a.data() + a.size() || rb.ec != std::errc() ||
        rb.ptr != b.data() + b.size() || first != 0 || last < first)
        return std::nullopt;
    return last == 0 ? 0 : last + 1;
}

namespace {

std::string with_digest(const std::string& location, const std::string& digest) {
    return location + (location.find('?') == std::string::npos ? "?" : "&") +
           "digest=" + url_escape(digest);
}

std::string location_of(Client& client, const Operation& op, const HttpResponse& resp,
                        const std::string& fallback) {
    auto location = resp.header("location");
    if (location.empty()) {
        if (!fallback.empty()) return fallback;
        throw Error(client.error_message(op, "HTTP " + std::to_string(resp.status) +
                                                 " without a Location"));
    }
    auto url = resolve_url(fallback.empty() ? client.api_base() : fallback, location);
    if (!url) throw Error(client.error_message(op, "malformed Location"));
    return *url;
}

// POST …/uploads/ (with ?mount=&from= when from is given): the upload URL, or "" when mounted.
std::string start_upload(Client& client, const std::string& repository, const oci::Descriptor& d,
                         const std::string& from) {
    Operation op{repository, from.empty() ? "POST blob upload" : "POST blob mount " + d.digest};
    HttpRequest req;
    req.method = "POST";
    req.url = repository + "/blobs/uploads/";
    std::vector<std::string> scopes;
    if (!from.empty()) {
        req.url += "?mount=" + url_escape(d.digest) + "&from=" + url_escape(from);
        scopes.push_back("repository:" + from + ":pull");
    }
    auto resp = client.send(op, req, Access::push, scopes);
    if (resp.status == 201 && !from.empty()) return "";
    if (resp.status != 202) {
        // A mount the registry refuses (no pull access to from, say) is an upload instead.
        if (!from.empty()) return start_upload(client, repository, d, "");
        client.fail(op, resp);
    }
    return location_of(client, op, resp, "");
}

void check_stored_digest(Client& client, const Operation& op, const HttpResponse& resp,
                         const oci::Descriptor& d) {
    auto got = resp.header("docker-content-digest");
    if (!got.empty() && got != d.digest)
        throw Error(client.error_message(op, "the registry stored digest " + got));
}

bool transient(const HttpResponse& resp) {
    return resp.curl_code != 0 || resp.status == 0 || retryable_status(resp.status);
}

// One blob's upload session, from its first URL to the final PUT.
class Upload {
  public:
    Upload(Client& client, const std::string& repository, const oci::Descriptor& d, int fd,
           const UploadOptions& options, UploadResult& result)
        : client_(client), repository_(repository), d_(d), fd_(fd), options_(options),
          result_(result), size_(static_cast<std::uint64_t>(d.size)) {}

    void monolithic(std::string location) {
        Operation op{repository_, "PUT blob " + d_.digest};
        Client::Retry retry(client_, op);
        for (;;) {
            auto resp = client_.send_once(
                op, body_request("PUT", with_digest(location, d_.digest), 0, size_), Access::push);
            result_.bytes_sent += sent_;
            sent_ = 0;
            if (resp.ok() && resp.status != 202) return check_stored_digest(client_, op, resp, d_);
            if (resp.curl_code == 0 && !retryable_status(resp.status)) client_.fail(op, resp);
            if (!retry.again(resp)) client_.fail(op, resp, retry.attempts(), retry.elapsed());
            location = start_upload(client_, repository_, d_, "");
            ++result_.restarts;
        }
    }

    void chunked(std::string location) {
        Operation op{repository_, "PATCH blob " + d_.digest};
        std::optional<Client::Retry> retry(std::in_place, client_, op);
        std::uint64_t offset = 0;
        int range_errors = 0;
        for (;;) {
            if (offset >= size_) {
                if (finish(location, *retry)) return;
            } else {
                auto n = std::min(options_.chunk_size, size_ - offset);
                auto req = body_request("PATCH", location, offset, n);
                req.headers.push_back("Content-Range: " + std::to_string(offset) + "-" +
                                      std::to_string(offset + n - 1));
                auto resp = client_.send_once(op, req, Access::push);
                result_.bytes_sent += sent_;
                sent_ = 0;
                if (resp.status == 202 && resp.curl_code == 0) {
                    location = location_of(client_, op, resp, location);
                    auto end = upload_range_end(resp.header("range"));
                    offset = end ? *end : offset + n;
                    if (offset > size_)
                        throw Error(client_.error_message(
                            op, "the registry says it has " + std::to_string(offset) +
                                    " bytes of a " + std::to_string(size_) + "-byte blob"));
                    retry.emplace(client_, op); // progress: a fresh bound for the next failure
                    continue;
                }
                if (resp.status == 416) {
                    // The registry has another offset than ours: ask it, then go on from there.
                    if (++range_errors > 3) client_.fail(op, resp);
                } else if (!transient(resp)) {
                    client_.fail(op, resp);
                } else if (!retry->again(resp)) {
                    client_.fail(op, resp, retry->attempts(), retry->elapsed());
                }
            }
            resume(op, location, offset);
        }
    }

  private:
    HttpRequest body_request(const char* method, const std::string& url, std::uint64_t offset,
                             std::uint64_t n) {
        HttpRequest req;
        req.method = method;
        req.url = url;
        req.headers.push_back("Content-Type: application/octet-stream");
        req.body_fd = fd_;
        req.body_offset = offset;
        req.body_size = n;
        req.on_sent = [this](std::uint64_t k) {
            sent_ += k;
            if (options_.on_sent) options_.on_sent(k);
        };
        return req;
    }

    // PUT ?digest= with no body: true when the blob is complete, false to resume and retry
    // (retry: the upload's bound, so that a PUT that keeps failing gives up).
    bool finish(const std::string& location, Client::Retry& retry) {
        Operation op{repository_, "PUT blob " + d_.digest};
        HttpRequest req;
        req.method = "PUT";
        req.url = with_digest(location, d_.digest);
        req.headers.push_back("Content-Type: application/octet-stream");
        auto resp = client_.send_once(op, req, Access::push);
        if (resp.ok() && resp.status != 202) {
            check_stored_digest(client_, op, resp, d_);
            return true;
        }
        if (resp.status == 416 || !transient(resp)) client_.fail(op, resp);
        if (!retry.again(resp)) client_.fail(op, resp, retry.attempts(), retry.elapsed());
        return false;
    }

    // GET <location>: where the session is (204 with Range and a new Location). A session the
    // registry no longer knows starts again from byte 0 in a new one.
    void resume(const Operation& op, std::string& location, std::uint64_t& offset) {
        Operation status_op{repository_, "GET blob upload status " + d_.digest};
        HttpRequest req;
        req.url = location;
        auto resp = client_.send(status_op, req, Access::push);
        auto end = resp.ok() ? upload_range_end(resp.header("range")) : std::nullopt;
        if (resp.ok() && end && *end <= size_) {
            location = location_of(client_, status_op, resp, location);
            offset = *end;
            ++result_.resumes;
            event(op, "resuming at byte " + std::to_string(offset));
            return;
        }
        if (resp.status != 404 && resp.status != 400 && !resp.ok()) client_.fail(status_op, resp);
        location = start_upload(client_, repository_, d_, "");
        offset = 0;
        ++result_.restarts;
        event(op, "the registry forgot the upload; starting again");
    }

    void event(const Operation& op, const std::string& what) {
        if (auto* p = client_.options().progress) p->event("push", client_.error_message(op, what));
    }

    Client& client_;
    const std::string& repository_;
    const oci::Descriptor& d_;
    int fd_;
    const UploadOptions& options_;
    UploadResult& result_;
    std::uint64_t size_;
    std::uint64_t sent_ = 0; // bytes of the current request handed to curl
};

} // namespace

UploadResult upload_blob(Client& client, const std::string& repository, const oci::Descriptor& d,
                         int fd, const UploadOptions& options) {
    UploadResult result;
    std::string location;
    for (const auto& from : options.mount_from) {
        if (from == repository) continue;
        location = start_upload(client, repository, d, from);
        if (location.empty()) {
            result.mounted = true;
            result.mounted_from = from;
            return result;
        }
        // 202: not mountable from there; the session is used unless another candidate is left.
    }
    if (location.empty()) location = start_upload(client, repository, d, "");
    Upload upload(client, repository, d, fd, options, result);
    if (static_cast<std::uint64_t>(d.size) <= options.chunk_size)
        upload.monolithic(location);
    else
        upload.chunked(location);
    return result;
}

} // namespace factory::registry
