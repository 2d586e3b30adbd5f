#include "factory/builder/remote_cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <set>

#include "cache/listings.hpp"
#include "cache/lock.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/registry/blob_sources.hpp"
#include "factory/registry/pull.hpp"
#include "factory/registry/push.hpp"
#include "factory/runtime/applier.hpp"
#include "factory/runtime/changeset.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "factory/builder/step_kind.hpp"

namespace factory::builder {

namespace fs = std::filesystem;
namespace mt = oci::media_type;

struct RemoteCache::Source {
    CacheRef ref;
    CacheIndex index;
    registry::Client* client = nullptr;
    std::map<std::string, std::size_t> by_key; // key → index.entries position
};

namespace {

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        auto comma = text.find(',', start);
        out.push_back(text.substr(start, comma - start));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

} // namespace

CacheRef parse_cache_ref(const std::string& text, const std::string& option, CacheUse use) {
    auto parts = split_commas(text);
    CacheRef out;
    out.text = text;
    if (parts.empty() || !parts[0].starts_with("docker://"))
        throw usage_error(option + " " + text + ": expected docker://HOST/REPO[:TAG]" +
                          (use == CacheUse::write ? "[,mode=min|max][,keep=N]" : ""));
    auto ref = registry::parse_reference(parts[0]);
    if (!ref) throw usage_error(option + " " + text + ": " + ref.error());
    if (!ref->digest.empty())
        throw usage_error(option + " " + text + ": a cache is named by a tag, not a digest");
    out.ref = *ref;
    // mode and keep say what an export writes; a reader takes whatever the cache holds.
    if (use == CacheUse::read && parts.size() > 1)
        throw usage_error(option + " " + text + ": '" + parts[1] +
                          "' is an option for writing a cache (--cache-to, cache export); "
                          "reading one takes none");
    for (std::size_t i = 1; i < parts.size(); ++i) {
        const auto& p = parts[i];
        if (p == "mode=min")
            out.mode = CacheMode::min;
        else if (p == "mode=max")
            out.mode = CacheMode::max;
        else if (p.starts_with("keep=")) {
            auto n = p.substr(5);
            if (n.empty() || n.size() > 6 || !std::all_of(n.begin(), n.end(), ::isdigit) ||
                std::stoul(n) == 0)
                throw usage_error(option + " " + text + ": keep=N needs N from 1 to 999999");
            out.keep = std::stoul(n);
        } else
            throw usage_error(option + " " + text + ": unknown option '" + p +
                              "' (expected mode=min, mode=max or keep=N)");
    }
    return out;
}

std::string cache_mount_name(const std::string& id) {
    return Sha256::hex(id).substr(0, 32);
}

// ---- reading --------------------------------------------------------------------------------

namespace {

// A small blob of the cache (its config, a listing) into memory, under `cap`.
std::string blob_bytes(registry::Client& client, const std::string& repository,
                       const oci::Descriptor& blob, std::uint64_t cap, const std::string& what) {
    registry::Operation op{repository, "GET cache " + what + " " + blob.digest};
    registry::HttpRequest req;
    req.url = repository + "/blobs/" + blob.digest;
    req.max_body = cap;
    auto resp = client.send(op, req, registry::Access::pull);
    if (resp.too_large)
        throw Error(client.error_message(op, "the " + what + " is over the cap of " +
                                                 std::to_string(cap) + " bytes"));
    if (!resp.ok()) client.fail(op, resp);
    if (resp.body.size() != static_cast<std::size_t>(blob.size) ||
        "sha256:" + Sha256::hex(resp.body) != blob.digest)
        throw Error(
            client.error_message(op, "content does not match the digest and size asked for"));
    return std::move(resp.body);
}

} // namespace

std::optional<CacheIndex> read_cache(registry::Client& client, const CacheRef& ref) {
    const auto& repo = ref.ref.repository;
    auto found = registry::find_manifest(client, repo, ref.ref.tag, "");
    if (!found) return std::nullopt;
    auto& checked = *found;
    auto what = [&](const std::string& why) {
        return Error(ref.ref.str() + " is not a usable factory cache: " + why);
    };
    if (!checked.manifest) throw what("it is an index, not an image manifest");
    if (auto ok = check_cache_manifest(*checked.manifest); !ok) throw what(ok.error());
    auto bytes =
        blob_bytes(client, repo, checked.manifest->config, max_cache_config_size, "config");
    auto index = decode_cache_config(bytes);
    if (!index) throw what(index.error());
    if (auto ok = check_cache_layers(*checked.manifest, *index); !ok) throw what(ok.error());
    return std::move(*index);
}

RemoteCache::RemoteCache(registry::ClientOptions options) : options_(std::move(options)) {}
RemoteCache::~RemoteCache() = default;

registry::Client& RemoteCache::client_for(const std::string& host) {
    std::lock_guard lock(mutex_);
    for (auto& c : clients_)
        if (c->host() == host) return *c;
    clients_.push_back(std::make_unique<registry::Client>(host, options_));
    return *clients_.back();
}

RemoteCache::Source RemoteCache::load_source(const CacheRef& ref, bool required) {
    Source s;
    s.ref = ref;
    s.client = &client_for(ref.ref.api_host());
    if (auto index = read_cache(*s.client, ref))
        s.index = std::move(*index);
    else if (required)
        throw Error(ref.ref.str() + ": the registry has no cache there (no manifest for the tag " +
                    ref.ref.tag + "); a `--cache-to` export writes one");
    for (std::size_t i = 0; i < s.index.entries.size(); ++i)
        s.by_key.emplace(s.index.entries[i].record.key, i);
    return s;
}

void RemoteCache::load(const std::vector<CacheRef>& refs) {
    for (const auto& ref : refs) {
        try {
            sources_.push_back(std::make_unique<Source>(load_source(ref, false)));
        } catch (const std::exception& e) {
            // One line per reference; the build goes on with what the store has.
            warn("--cache-from " + ref.text + ": " + e.what() + "; building without it");
        }
    }
}

void RemoteCache::load_or_throw(const CacheRef& ref) {
    sources_.push_back(std::make_unique<Source>(load_source(ref, true)));
}

std::optional<RemoteEntry> RemoteCache::find(const std::string& key) const {
    for (std::size_t i = 0; i < sources_.size(); ++i) {
        auto it = sources_[i]->by_key.find(key);
        if (it != sources_[i]->by_key.end())
            return RemoteEntry{sources_[i]->index.entries[it->second], i};
    }
    return std::nullopt;
}

std::optional<std::pair<CacheMount, std::size_t>>
RemoteCache::find_mount(const std::string& name) const {
    for (std::size_t i = 0; i < sources_.size(); ++i)
        for (const auto& m : sources_[i]->index.mounts)
            if (m.name == name) return std::pair{m, i};
    return std::nullopt;
}

std::vector<RemoteEntry> RemoteCache::entries() const {
    std::vector<RemoteEntry> out;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < sources_.size(); ++i)
        for (const auto& e : sources_[i]->index.entries)
            if (seen.insert(e.record.key).second) out.push_back({e, i});
    return out;
}

std::vector<std::pair<CacheMount, std::size_t>> RemoteCache::mounts() const {
    std::vector<std::pair<CacheMount, std::size_t>> out;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < sources_.size(); ++i)
        for (const auto& m : sources_[i]->index.mounts)
            if (seen.insert(m.name).second) out.push_back({m, i});
    return out;
}

std::optional<std::string> RemoteCache::listing(const std::string& layer, cache::BlobStore& store,
                                                std::uint64_t& downloaded) {
    {
        std::lock_guard lock(mutex_);
        if (auto it = listings_.find(layer); it != listings_.end()) return it->second;
    }
    std::optional<std::string> body;
    for (const auto& s : sources_) {
        auto it = std::find_if(s->index.listings.begin(), s->index.listings.end(),
                               [&](const CacheListing& l) { return l.layer == layer; });
        if (it == s->index.listings.end()) continue;
        const auto& d = it->listing;
        if (auto kept = store.read_exact(*d.sha256_hex(), static_cast<std::uint64_t>(d.size))) {
            body = std::move(*kept);
            break;
        }
        try {
            body = blob_bytes(*s->client, s->ref.ref.repository, d, max_cache_listing_size,
                              "listing of " + layer);
        } catch (const Error& e) {
            throw Error(s->ref.text + ": " + e.what()); // the warning names the cache
        }
        downloaded += body->size();
        try {
            store.put(*body);
        } catch (const Error&) {
            // Only a saving lost: the next build downloads it again.
        }
        break;
    }
    std::lock_guard lock(mutex_);
    return listings_.emplace(layer, std::move(body)).first->second;
}

const CacheRef& RemoteCache::ref(std::size_t source) const {
    return sources_.at(source)->ref;
}

std::uint64_t RemoteCache::fetch(std::size_t source, const std::vector<oci::Descriptor>& blobs,
                                 cache::BlobStore& store, Progress* progress) {
    auto& s = *sources_.at(source);
    registry::BlobSources sources(store); // a push to this registry mounts them from the cache
    std::uint64_t bytes = 0;
    for (const auto& d : blobs) {
        if (registry::fetch_blob_into(*s.client, s.ref.ref.repository, d, store, progress))
            bytes += static_cast<std::uint64_t>(d.size);
        sources.record(d.digest, s.client->host(), s.ref.ref.repository);
    }
    return bytes;
}

namespace {

bool empty_dir(const fs::path& dir) {
    std::error_code ec;
    return !fs::exists(dir, ec) || fs::is_empty(dir, ec);
}

} // namespace

std::uint64_t RemoteCache::restore_mount(std::size_t source, const CacheMount& mount,
                                         const fs::path& dir, oci::Layout& store) {
    auto lock = cache::FileLock::exclusive(dir.string() + ".lock");
    if (!empty_dir(dir)) return 0;
    auto bytes = fetch(source, {mount.layer}, store.blobs());
    TempDir temp(dir.parent_path(), ".restore-");
    Fd root(::open(temp.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw Error("cannot open " + temp.path().string() + ": " + errno_string(errno));
    runtime::ApplyOptions ao;
    ao.expected_digest = mount.layer.digest;
    ao.devices = false;
    auto applied =
        runtime::apply_layer(store.blobs().path(*mount.layer.sha256_hex()), root.get(), ao);
    if (!applied)
        throw Error("cache mount " + mount.id + " (" + mount.layer.digest +
                    "): " + applied.error());
    std::error_code ec;
    fs::remove(dir, ec); // empty, or absent
    fs::rename(temp.path(), dir, ec);
    if (ec)
        throw Error("cannot move the restored cache mount into " + dir.string() + ": " +
                    ec.message());
    temp.keep();
    return bytes;
}

// ---- writing --------------------------------------------------------------------------------

namespace {

// A blob of a record as the manifest lists it: a layer's descriptor as the result gives it,
// else the store's size and cache_blob_type (a base's manifest, config).
std::optional<oci::Descriptor> blob_descriptor(const cache::ActionRecord& rec,
                                               const std::string& hex, oci::Layout& store) {
    std::error_code ec;
    auto size = fs::file_size(store.blobs().path(hex), ec);
    if (ec) return std::nullopt;
    if (rec.result.is_object() && rec.result.contains("layer")) {
        auto layer = oci::descriptor_from_json(rec.result.at("layer"));
        if (layer && layer->digest == "sha256:" + hex && allowed_blob_type(layer->media_type))
            return *layer;
    }
    oci::Descriptor d;
    d.media_type = std::string(cache_blob_type);
    d.digest = "sha256:" + hex;
    d.size = static_cast<std::int64_t>(size);
    return d;
}

std::optional<CacheEntry> local_entry(const std::string& key, cache::ActionStore& actions,
                                      oci::Layout& store) {
    auto rec = actions.read(key);
    if (!rec) return std::nullopt;
    CacheEntry e;
    for (const auto& hex : rec->blobs) {
        auto d = blob_descriptor(*rec, hex, store);
        if (!d) return std::nullopt; // pruned, or never downloaded: not ours to export
        e.blobs.push_back(std::move(*d));
    }
    rec->inputs.clear();
    rec->input_count = 0;
    e.record = std::move(*rec);
    return e;
}

// The mount's files as a deterministic tar+gzip layer in the store.
std::optional<CacheMount> mount_layer(const std::string& name, const std::string& id,
                                      oci::Layout& store) {
    auto dir = store.dir() / "mounts" / name;
    if (empty_dir(dir)) return std::nullopt;
    auto lock = cache::FileLock::exclusive(dir.string() + ".lock");
    runtime::NormalizeOptions no;
    no.drop_noise = false;
    auto entries = runtime::diff_upper(dir, no);
    if (!entries) throw Error("cache mount " + id + ": " + entries.error());
    auto temp = store.blobs().tmp_dir() / (std::string(temp_prefix) + "mount-" + unique_suffix());
    Fd fd(::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) throw Error("cannot create " + temp.string() + ": " + errno_string(errno));
    layer::LayerOptions lo; // epoch 0, gzip: the bytes depend on the files only
    auto info = layer::write_layer(std::move(*entries), lo, fd.get());
    if (!info) {
        ::unlink(temp.c_str());
        throw Error("cache mount " + id + ": " + info.error());
    }
    fd.reset();
    auto hex = info->digest.substr(7);
    store.blobs().commit_temp(temp, hex);
    CacheMount m;
    m.name = name;
    m.id = id;
    m.created = std::time(nullptr);
    m.layer.media_type = std::string(cache_mount_type);
    m.layer.digest = info->digest;
    m.layer.size = static_cast<std::int64_t>(info->size);
    return m;
}

// The store's listings of the entries' blobs, each put in the store as a blob of its body, so
// a build on another agent knows those layers' files without downloading them.
std::vector<CacheListing> local_listings(const CacheIndex& index, oci::Layout& store) {
    cache::Listings listings(store.dir());
    std::set<std::string> seen;
    std::vector<CacheListing> out;
    for (const auto& e : index.entries)
        for (const auto& d : e.blobs) {
            if (!seen.insert(d.digest).second) continue;
            auto body = listings.read(*d.sha256_hex());
            if (!body) continue; // never read here, or damaged: the agent reads the layer
            CacheListing l;
            l.layer = d.digest;
            l.listing = store.put_blob(std::string(cache_blob_type), *body);
            out.push_back(std::move(l));
        }
    return out;
}

} // namespace

CacheExportReport export_cache(const CacheRef& ref, oci::Layout& store,
                               const CacheExportItems& items,
                               const registry::ClientOptions& options, Progress* progress) {
    registry::Client client(ref.ref.api_host(), options);
    const auto& repo = ref.ref.repository;
    cache::ActionStore actions(store.dir(), store.blobs());
    CacheIndex mine;
    for (const auto& key : items.keys)
        if (auto e = local_entry(key, actions, store)) mine.entries.push_back(std::move(*e));
    if (ref.mode == CacheMode::max)
        for (const auto& [name, id] : items.mounts)
            if (auto m = mount_layer(name, id, store)) mine.mounts.push_back(std::move(*m));
    mine.listings = local_listings(mine, store);
    // Read, merge, write: two exports at the same instant both read the old cache and the last
    // manifest written wins (docs/cache.md "Two agents at once").
    auto there = read_cache(client, ref).value_or(CacheIndex{});
    auto merged = merge_cache(there, mine, ref.keep);
    std::set<std::string> ours;
    for (const auto& e : mine.entries)
        for (const auto& d : e.blobs)
            ours.insert(d.digest);
    for (const auto& m : mine.mounts)
        ours.insert(m.layer.digest);
    for (const auto& l : mine.listings)
        ours.insert(l.listing.digest);
    CacheExportReport report;
    // Only our blobs are sent; the others are in the repository already (they came from it).
    for (const auto& d : cache_manifest(merged, {}).layers)
        if (ours.count(d.digest) && registry::push_store_blob(client, store, repo, d))
            ++report.blobs_uploaded;
    auto config_text = encode_cache_config(merged);
    auto config = store.put_blob(std::string(cache_config_type), config_text);
    registry::push_store_blob(client, store, repo, config);
    auto manifest = cache_manifest(merged, config);
    auto bytes = oci::serialize(manifest);
    auto desc = oci::describe(std::string(mt::manifest), bytes);
    registry::put_manifest_bytes(client, repo, ref.ref.tag, desc, bytes);
    report.entries = merged.entries.size();
    for (const auto& e : merged.entries)
        for (const auto& m : mine.entries)
            if (m.record.key == e.record.key) ++report.exported;
    report.mounts = merged.mounts.size();
    report.digest = desc.digest;
    if (progress)
        progress->event("cache", "exported " + std::to_string(report.exported) + " records, " +
                                     std::to_string(mine.mounts.size()) + " mounts to " +
                                     ref.ref.str() + " (" + std::to_string(report.entries) +
                                     " in all) " + desc.digest);
    return report;
}

} // namespace factory::builder
