#include "factory/registry/pull.hpp"

#include <chrono>
#include <cstdio>

#include "factory/oci/digest.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/registry/blob_progress.hpp"
#include "factory/registry/blob_sources.hpp"
#include "factory/registry/blob_transfer.hpp"

namespace factory::registry {

namespace {

namespace mt = oci::media_type;

std::string short_digest(const std::string& d) {
    return d.size() > 19 ? d.substr(0, 19) : d;
}

// A Range answer must start where we asked (RFC 9110 §14.4: "bytes START-END/TOTAL").
bool range_starts_at(const std::string& content_range, std::uint64_t start) {
    auto expected = "bytes " + std::to_string(start) + "-";
    return content_range.starts_with(expected);
}

// Streams one blob into the store, resuming after broken connections; false if it was there.
bool fetch_blob(Client& client, const std::string& repository, const oci::Descriptor& d,
                cache::BlobStore& blobs, const std::atomic<bool>& cancelled, Progress* progress) {
    auto hex = d.sha256_hex();
    if (!hex)
        throw Error("registry " + client.host() + ": repository " + repository + ": blob " +
                    d.digest + ": " + hex.error());
    if (blobs.has(*hex)) return false;
    if (d.size < 0) throw Error("blob " + d.digest + ": negative size");
    auto size = static_cast<std::uint64_t>(d.size);
    Operation op{repository, "GET blob " + d.digest};
    auto writer = std::make_optional(blobs.writer());
    BlobProgress shown(progress, "pull", d);
    Client::Retry retry(client, op);
    for (;;) {
        std::uint64_t have = writer->size();
        std::uint64_t skip = 0; // bytes of a 200 answer to a Range request that we already have
        bool first_chunk = true, bad_range = false, too_big = false;
        HttpRequest req;
        req.url = repository + "/blobs/" + d.digest;
        if (have > 0) req.headers.push_back("Range: bytes=" + std::to_string(have) + "-");
        req.on_body = [&](const HttpResponse& resp, const char* data, std::size_t n) {
            if (cancelled) return false;
            if (first_chunk) {
                first_chunk = false;
                if (have > 0 && resp.status == 200)
                    skip = have; // Range ignored: drop the start
                else if (have > 0 && !range_starts_at(resp.header("content-range"), have)) {
                    bad_range = true;
                    return false;
                }
            }
            if (skip > 0) {
                auto drop = static_cast<std::size_t>(std::min<std::uint64_t>(skip, n));
                skip -= drop;
                data += drop;
                n -= drop;
            }
            if (writer->size() + n > size) {
                too_big = true;
                return false;
            }
            writer->write(data, n);
            shown.add(n);
            return true;
        };
        auto resp = client.send_once(op, req, Access::pull);
        if (cancelled) throw Error(client.error_message(op, "cancelled"));
        if (too_big)
            throw Error(client.error_message(op, "the registry sent more than the descriptor's " +
                                                     std::to_string(size) + " bytes"));
        if (resp.ok() && !bad_range && writer->size() == size) break;
        if (bad_range || resp.status == 416) {
            writer.emplace(blobs.writer()); // start over
            if (!retry.again(resp)) client.fail(op, resp, retry.attempts(), retry.elapsed());
            continue;
        }
        if (resp.ok()) {
            // A complete-looking answer that stopped short: a truncated body.
            resp.curl_code = 18; // CURLE_PARTIAL_FILE
            resp.curl_error = "body ended after " + std::to_string(writer->size()) + " of " +
                              std::to_string(size) + " bytes";
        }
        if (resp.curl_code == 0 && !retryable_status(resp.status)) client.fail(op, resp);
        if (!retry.again(resp)) client.fail(op, resp, retry.attempts(), retry.elapsed());
        if (progress && writer->size() > 0)
            progress->event("retry", "blob " + short_digest(d.digest) + ": resuming at byte " +
                                         std::to_string(writer->size()));
    }
    auto committed = writer->commit_verified(*hex, size);
    if (!committed) throw Error(client.error_message(op, committed.error()));
    shown.done("", size);
    return true;
}

std::string platforms_of(const oci::Index& index) {
    std::string out;
    for (const auto& m : index.manifests)
        if (m.platform) out += (out.empty() ? "" : ", ") + m.platform->str();
    return out.empty() ? "none" : out;
}

// GET manifests/<reference>: nullopt on a 404 when `absent_ok`, else every failure throws.
std::optional<CheckedManifest> get_manifest_or(Client& client, const std::string& repository,
                                               const std::string& reference,
                                               std::string_view expected_media_type,
                                               bool absent_ok) {
    Operation op{repository, "GET manifest " + reference};
    HttpRequest req;
    req.url = repository + "/manifests/" + reference;
    req.headers.push_back(manifest_accept_header());
    req.max_body = max_manifest_size;
    auto resp = client.send(op, req, Access::pull);
    if (absent_ok && resp.status == 404) return std::nullopt;
    if (resp.too_large) throw Error(client.error_message(op, "manifest is larger than 4 MiB"));
    if (!resp.ok()) client.fail(op, resp);
    bool by_digest = reference.starts_with("sha256:");
    auto checked = check_manifest(std::move(resp.body), resp.header("content-type"),
                                  by_digest ? reference : "", expected_media_type);
    if (!checked) throw Error(client.error_message(op, checked.error()));
    return std::move(*checked);
}

} // namespace

CheckedManifest get_manifest(Client& client, const std::string& repository,
                             const std::string& reference, std::string_view expected_media_type) {
    return *get_manifest_or(client, repository, reference, expected_media_type, false);
}

std::optional<CheckedManifest> find_manifest(Client& client, const std::string& repository,
                                             const std::string& reference,
                                             std::string_view expected_media_type) {
    return get_manifest_or(client, repository, reference, expected_media_type, true);
}

std::optional<oci::Descriptor> head_manifest(Client& client, const std::string& repository,
                                             const std::string& reference) {
    Operation op{repository, "HEAD manifest " + reference};
    HttpRequest req;
    req.method = "HEAD";
    req.url = repository + "/manifests/" + reference;
    req.headers.push_back(manifest_accept_header());
    auto resp = client.send(op, req, Access::pull);
    if (resp.status == 404) return std::nullopt;
    if (!resp.ok()) client.fail(op, resp);
    oci::Descriptor d;
    d.digest = resp.header("docker-content-digest");
    d.media_type = resp.header("content-type");
    d.media_type = d.media_type.substr(0, d.media_type.find(';'));
    auto len = resp.header("content-length");
    d.size = len.empty() ? -1 : std::atoll(len.c_str());
    return d;
}

oci::Descriptor resolve_manifest(Client& client, const Reference& ref,
                                 const oci::Platform& platform) {
    // A tag that names an image manifest costs one HEAD; an index needs its content read.
    if (ref.digest.empty()) {
        auto head = head_manifest(client, ref.repository, ref.tag);
        if (head && mt::is_manifest(head->media_type) && oci::Digest::parse(head->digest) &&
            head->size > 0)
            return *head;
    }
    auto m = get_manifest(client, ref.repository, ref.reference(), "");
    if (m.manifest) return oci::describe(m.media_type, m.bytes);
    const auto* d = oci::select_platform(*m.index, platform);
    if (!d)
        throw Error("registry " + client.host() + ": repository " + ref.repository + ": " +
                    ref.reference() + " has no image for " + platform.str() +
                    " (it has: " + platforms_of(*m.index) + ")");
    return *d;
}

PulledImage pull(Client& client, const Reference& ref, oci::Layout& store,
                 const PullOptions& options) {
    PulledImage out;
    auto top = get_manifest(client, ref.repository, ref.reference(), "");
    CheckedManifest image = std::move(top);
    if (image.index) {
        const auto* d = oci::select_platform(*image.index, options.platform);
        if (!d)
            throw Error("registry " + client.host() + ": repository " + ref.repository + ": " +
                        ref.reference() + " has no image for " + options.platform.str() +
                        " (it has: " + platforms_of(*image.index) + ")");
        out.index_digest = image.digest;
        auto child = get_manifest(client, ref.repository, d->digest, d->media_type);
        if (!child.manifest)
            throw Error("registry " + client.host() + ": repository " + ref.repository + ": " +
                        d->digest + ": an index inside an index is not supported");
        image = std::move(child);
    }
    const auto& manifest = *image.manifest;
    std::vector<oci::Descriptor> blobs{manifest.config};
    blobs.insert(blobs.end(), manifest.layers.begin(), manifest.layers.end());
    std::atomic<std::size_t> fetched{0};
    std::atomic<std::uint64_t> bytes{0};
    BlobSources sources(store);
    for_each_parallel(blobs.size(), options.jobs,
                      [&](std::size_t i, const std::atomic<bool>& cancelled) {
                          if (fetch_blob(client, ref.repository, blobs[i], store.blobs(), cancelled,
                                         options.progress)) {
                              ++fetched;
                              bytes += static_cast<std::uint64_t>(blobs[i].size);
                          }
                          sources.record(blobs[i].digest, client.host(), ref.repository);
                      });
    auto config_bytes = store.read_blob(manifest.config);
    if (!config_bytes)
        throw Error("pulled config " + manifest.config.digest + ": " + config_bytes.error());
    auto config = oci::ImageConfig::parse(*config_bytes, manifest.layers.size());
    if (!config)
        throw Error("registry " + client.host() + ": repository " + ref.repository + ": config " +
                    manifest.config.digest + ": " + config.error());
    // The manifest last, with its exact bytes (its digest is what was verified), then the ref.
    auto desc = store.put_blob(image.media_type, image.bytes);
    if (options.set_ref) store.set_ref(ref.str(), desc);
    out.manifest_desc = desc;
    out.manifest = manifest;
    out.config = std::move(*config);
    out.blobs_fetched = fetched;
    out.bytes_fetched = bytes;
    return out;
}

bool fetch_blob_into(Client& client, const std::string& repository, const oci::Descriptor& d,
                     cache::BlobStore& blobs, Progress* progress) {
    std::atomic<bool> never{false};
    return fetch_blob(client, repository, d, blobs, never, progress);
}

} // namespace factory::registry
