#include "factory/registry/push.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "factory/oci/media_types.hpp"
#include "factory/registry/blob_progress.hpp"
#include "factory/registry/blob_sources.hpp"
#include "factory/registry/blob_transfer.hpp"
#include "factory/registry/pull.hpp"
#include "factory/registry/upload.hpp"

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

struct BlobPushed {
    BlobOutcome outcome;
    UploadResult upload;
};

BlobPushed push_blob(Client& client, const oci::Layout& store, const std::string& repository,
                     const oci::Descriptor& d, const PushOptions& options, BlobProgress& shown) {
    if (blob_exists(client, repository, d)) return {BlobOutcome::present, {}};
    auto hex = d.sha256_hex();
    if (!hex) throw Error("blob " + d.digest + ": " + hex.error());
    auto fd = store.blobs().open(*hex);
    if (!fd) throw Error("push: " + fd.error());
    UploadOptions upload;
    upload.chunk_size = options.chunk_size;
    upload.on_sent = [&shown](std::uint64_t n) { shown.add(n); };
    if (!options.mount_from.empty()) upload.mount_from.push_back(options.mount_from);
    // Repositories of this registry the blob was pulled from or pushed to (blob_sources.hpp).
    if (options.discover_mounts)
        for (auto& repo : BlobSources(store).repositories(d.digest, client.host()))
            if (repo != repository && std::find(upload.mount_from.begin(), upload.mount_from.end(),
                                                repo) == upload.mount_from.end())
                upload.mount_from.push_back(std::move(repo));
    // The upload URL is the registry's own (or where it pointed): credentials only go to the
    // registry's origin (Client::follow).
    auto result = upload_blob(client, repository, d, fd->get(), upload);
    return {result.mounted ? BlobOutcome::mounted : BlobOutcome::uploaded, result};
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

// True if every tag (at least one) already names digest: one HEAD per tag.
bool all_tags_name(Client& client, const std::string& repository,
                   const std::vector<std::string>& tags, const std::string& digest) {
    if (tags.empty()) return false;
    for (const auto& t : tags) {
        auto head = head_manifest(client, repository, t);
        if (!head || head->digest != digest) return false;
    }
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
    std::vector<std::string> tags;
    if (!dest.tag.empty()) tags.push_back(dest.tag);
    for (const auto& t : options.extra_tags)
        if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
    if (all_tags_name(client, dest.repository, tags, image.digest)) {
        // A registry accepts a manifest only when it has its blobs: nothing to send or check.
        out.blobs_present = blobs.size();
        out.manifest_present = true;
        for (const auto& b : blobs)
            BlobSources(store).record(b.digest, client.host(), dest.repository);
        return out;
    }
    std::atomic<std::size_t> uploaded{0}, mounted{0}, present{0};
    std::atomic<std::uint64_t> bytes{0}, sent{0};
    std::atomic<std::size_t> resumes{0};
    for_each_parallel(blobs.size(), options.jobs, [&](std::size_t i, const std::atomic<bool>&) {
        BlobProgress shown(options.progress, "push", blobs[i]);
        auto pushed = push_blob(client, store, dest.repository, blobs[i], options, shown);
        BlobSources(store).record(blobs[i].digest, client.host(), dest.repository);
        auto outcome = pushed.outcome;
        sent += pushed.upload.bytes_sent;
        resumes += static_cast<std::size_t>(pushed.upload.resumes);
        auto size = static_cast<std::uint64_t>(blobs[i].size);
        if (outcome == BlobOutcome::present) ++present;
        if (outcome == BlobOutcome::mounted) ++mounted;
        if (outcome == BlobOutcome::uploaded) {
            ++uploaded;
            bytes += size;
        }
        shown.done(outcome == BlobOutcome::present   ? "exists"
                   : outcome == BlobOutcome::mounted ? "mounted from " + pushed.upload.mounted_from
                                                     : "pushed",
                   pushed.upload.bytes_sent);
    });
    bool any_put = false;
    for (const auto& m : manifests) {
        auto bytes_of = store.read_blob(m);
        if (!bytes_of) throw Error("push: " + bytes_of.error());
        any_put |= put_manifest(client, dest.repository, m.digest, m, *bytes_of);
    }
    auto top = store.read_blob(image);
    if (!top) throw Error("push: " + top.error());
    for (const auto& t : tags)
        any_put |= put_manifest(client, dest.repository, t, image, *top);
    out.blobs_uploaded = uploaded;
    out.blobs_mounted = mounted;
    out.blobs_present = present;
    out.bytes_uploaded = bytes;
    out.bytes_sent = sent;
    out.resumes = resumes;
    out.manifest_present = !any_put;
    return out;
}

bool push_store_blob(Client& client, const oci::Layout& store, const std::string& repository,
                     const oci::Descriptor& blob) {
    BlobProgress quiet(nullptr, "push", blob);
    auto outcome = push_blob(client, store, repository, blob, {}, quiet).outcome;
    // As push() does: a later push of an image with this blob mounts it from here (a cache
    // export's layers are the image's).
    BlobSources(store).record(blob.digest, client.host(), repository);
    return outcome == BlobOutcome::uploaded;
}

void put_manifest_bytes(Client& client, const std::string& repository, const std::string& reference,
                        const oci::Descriptor& manifest, const std::string& bytes) {
    put_manifest(client, repository, reference, manifest, bytes);
}

} // namespace factory::registry
