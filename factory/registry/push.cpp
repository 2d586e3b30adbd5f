#include "factory/registry/push.hpp"

#include <atomic>
#include <chrono>

#include "factory/oci/media_types.hpp"
#include "factory/registry/blob_transfer.hpp"
#include "factory/registry/pull.hpp"

namespace factory::registry {

namespace {

namespace mt = oci::media_type;

enum class BlobOutcome { present, mounted, uploaded };

bool blob_exists(Client& client, const std::string& repository, const oci::Descriptor& d) {
    Operation op{repository, "HEAD blob " + d.digest};
    HttpRequest req;
    req.method = "HEAD";
    req.url = repository + "/blobs/" + d.digest;
    auto resp = client.send(op, req, Access::push);
    if (resp.status == 404) return false;
    if (!resp.ok()) client.fail(op, resp);
    return true;
}

std::string with_digest(const std::string& location, const std::string& digest) {
    return location + (location.find('?') == std::string::npos ? "?" : "&") +
           "digest=" + url_escape(digest);
}

// POST …/uploads/ (with ?mount= when from is given): the upload URL, or "" when mounted.
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
    if (resp.status != 202) client.fail(op, resp);
    auto location = resp.header("location");
    if (location.empty()) throw Error(client.error_message(op, "202 without a Location"));
    auto url = resolve_url(client.api_base(), location);
    if (!url) throw Error(client.error_message(op, "malformed Location"));
    return *url;
}

BlobOutcome push_blob(Client& client, const oci::Layout& store, const std::string& repository,
                      const oci::Descriptor& d, const PushOptions& options) {
    if (blob_exists(client, repository, d)) return BlobOutcome::present;
    auto hex = d.sha256_hex();
    if (!hex) throw Error("blob " + d.digest + ": " + hex.error());
    auto fd = store.blobs().open(*hex);
    if (!fd) throw Error("push: " + fd.error());
    Operation op{repository, "PUT blob " + d.digest};
    Client::Retry retry(client, op);
    bool mount = !options.mount_from.empty() && options.mount_from != repository;
    for (;;) {
        auto location = start_upload(client, repository, d, mount ? options.mount_from : "");
        if (location.empty()) return BlobOutcome::mounted;
        mount = false; // a 202 to a mount is an upload session; a retry starts a plain one
        HttpRequest req;
        req.method = "PUT";
        req.url = with_digest(location, d.digest);
        req.headers.push_back("Content-Type: application/octet-stream");
        req.body_fd = fd->get();
        req.body_size = static_cast<std::uint64_t>(d.size);
        // The upload URL is the registry's own (or where it pointed): credentials only go to
        // the registry's origin (Client::follow).
        auto resp = client.send_once(op, req, Access::push);
        if (resp.status == 201 || (resp.ok() && resp.status != 202)) {
            auto got = resp.header("docker-content-digest");
            if (!got.empty() && got != d.digest)
                throw Error(client.error_message(op, "the registry stored digest " + got));
            return BlobOutcome::uploaded;
        }
        if (resp.curl_code == 0 && !retryable_status(resp.status)) client.fail(op, resp);
        if (!retry.again(resp)) client.fail(op, resp, retry.attempts(), retry.elapsed());
    }
}

// PUT manifests/<reference> with the exact bytes; false if it was already there (same digest).
bool put_manifest(Client& client, const std::string& repository, const std::string& reference,
                  const oci::Descriptor& d, const std::string& bytes) {
    auto head = head_manifest(client, repository, reference);
    if (head && head->digest == d.digest) return false;
    Operation op{repository, "PUT manifest " + reference};
    HttpRequest req;
    req.method = "PUT";
    req.url = repository + "/manifests/" + reference;
    req.headers.push_back("Content-Type: " + d.media_type);
    req.body = bytes;
    auto resp = client.send(op, req, Access::push);
    if (resp.status != 201 && !resp.ok()) client.fail(op, resp);
    auto got = resp.header("docker-content-digest");
    if (!got.empty() && got != d.digest)
        throw Error(client.error_message(op, "the registry computed digest " + got +
                                                 " for a manifest of digest " + d.digest));
    return true;
}

} // namespace

PushResult push(Client& client, const oci::Layout& store, const oci::Descriptor& image,
                const Reference& dest, const PushOptions& options) {
    if (!dest.digest.empty() && dest.digest != image.digest)
        throw Error("push: " + dest.str() + " names digest " + dest.digest + " but the image is " +
                    image.digest);
    auto closure = store.closure(image);
    if (!closure) throw Error("push: " + closure.error());
    std::vector<oci::Descriptor> blobs, manifests;
    for (const auto& d : *closure)
        (mt::is_manifest(d.media_type) || mt::is_index(d.media_type) ? manifests : blobs)
            .push_back(d);
    PushResult out;
    out.digest = image.digest;
    std::atomic<std::size_t> uploaded{0}, mounted{0}, present{0};
    std::atomic<std::uint64_t> bytes{0};
    for_each_parallel(blobs.size(), options.jobs, [&](std::size_t i, const std::atomic<bool>&) {
        auto start = std::chrono::steady_clock::now();
        auto outcome = push_blob(client, store, dest.repository, blobs[i], options);
        auto size = static_cast<std::uint64_t>(blobs[i].size);
        if (outcome == BlobOutcome::present) ++present;
        if (outcome == BlobOutcome::mounted) ++mounted;
        if (outcome == BlobOutcome::uploaded) {
            ++uploaded;
            bytes += size;
        }
        if (options.progress) {
            auto secs =
                std::chrono::duration_cast<Seconds>(std::chrono::steady_clock::now() - start);
            const char* what = outcome == BlobOutcome::present   ? "exists"
                               : outcome == BlobOutcome::mounted ? "mounted"
                                                                 : "pushed";
            std::string line = blobs[i].digest.substr(0, 19) + " " + human_size(size) + " " + what;
            if (outcome == BlobOutcome::uploaded && secs.count() > 0)
                line += ", " +
                        human_size(
                            static_cast<std::uint64_t>(static_cast<double>(size) / secs.count())) +
                        "/s";
            options.progress->event("push", line);
        }
    });
    bool any_put = false;
    for (const auto& m : manifests) {
        auto bytes_of = store.read_blob(m);
        if (!bytes_of) throw Error("push: " + bytes_of.error());
        any_put |= put_manifest(client, dest.repository, m.digest, m, *bytes_of);
    }
    auto top = store.read_blob(image);
    if (!top) throw Error("push: " + top.error());
    std::vector<std::string> tags;
    if (!dest.tag.empty()) tags.push_back(dest.tag);
    for (const auto& t : options.extra_tags)
        if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
    for (const auto& t : tags)
        any_put |= put_manifest(client, dest.repository, t, image, *top);
    out.blobs_uploaded = uploaded;
    out.blobs_mounted = mounted;
    out.blobs_present = present;
    out.bytes_uploaded = bytes;
    out.manifest_present = !any_put;
    return out;
}

bool push_store_blob(Client& client, const oci::Layout& store, const std::string& repository,
                     const oci::Descriptor& blob) {
    return push_blob(client, store, repository, blob, {}) == BlobOutcome::uploaded;
}

void put_manifest_bytes(Client& client, const std::string& repository, const std::string& reference,
                        const oci::Descriptor& manifest, const std::string& bytes) {
    put_manifest(client, repository, reference, manifest, bytes);
}

} // namespace factory::registry
