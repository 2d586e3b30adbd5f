#include "factory/builder/cache_format.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "factory/oci/json.hpp"
#include "factory/oci/media_types.hpp"

namespace factory::builder {

namespace {

namespace mt = oci::media_type;
using oci::Json;

bool is_hex(std::string_view s, std::size_t n) {
    return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

Json entry_json(const CacheEntry& e) {
    Json j;
    j["record"] = Json::parse(cache::record_to_json(e.record));
    auto& blobs = j["blobs"] = Json::array();
    for (const auto& d : e.blobs)
        blobs.push_back(oci::to_json(d));
    return j;
}

Json mount_json(const CacheMount& m) {
    Json j;
    j["name"] = m.name;
    j["id"] = m.id;
    j["created"] = m.created;
    j["layer"] = oci::to_json(m.layer);
    return j;
}

Result<oci::Descriptor> blob_from(const Json& v, const std::string& where) {
    auto d = oci::descriptor_from_json(v, where);
    if (!d) return Unexpected(d.error());
    if (!d->sha256_hex()) return Unexpected(where + ": not a sha256 digest: " + d->digest);
    if (!allowed_blob_type(d->media_type))
        return Unexpected(where + ": media type " + d->media_type + " is not a cache blob's");
    return d;
}

Result<CacheEntry> entry_from(const Json& v, const std::string& where) {
    if (!v.is_object() || !v.contains("record") || !v.contains("blobs") ||
        !v.at("blobs").is_array())
        return Unexpected(where + ": expected {\"record\", \"blobs\"}");
    auto record = cache::record_from_json(v.at("record").dump());
    if (!record) return Unexpected(where + ".record: " + record.error());
    if (!is_hex(record->key, 64)) return Unexpected(where + ".record: key is not 64 hex digits");
    if (!record->step_id.empty() && !is_hex(record->step_id, 64))
        return Unexpected(where + ".record: step is not 64 hex digits");
    CacheEntry e;
    const auto& blobs = v.at("blobs");
    if (blobs.size() != record->blobs.size())
        return Unexpected(where + ": " + std::to_string(blobs.size()) +
                          " descriptors for a record of " + std::to_string(record->blobs.size()) +
                          " blobs");
    for (std::size_t i = 0; i < blobs.size(); ++i) {
        auto d = blob_from(blobs[i], where + ".blobs[" + std::to_string(i) + "]");
        if (!d) return Unexpected(d.error());
        if (*d->sha256_hex() != record->blobs[i])
            return Unexpected(where + ".blobs[" + std::to_string(i) + "]: " + d->digest +
                              " is not the record's blob " + record->blobs[i]);
        e.blobs.push_back(std::move(*d));
    }
    // A layer result must name one of the record's blobs: the one a hit appends to the image.
    if (record->result.is_object() && record->result.contains("layer")) {
        const auto& layer = record->result.at("layer");
        if (!layer.is_object() || !layer.contains("digest") || !layer.at("digest").is_string())
            return Unexpected(where + ".record: its result's layer has no digest");
        auto digest = layer.at("digest").get<std::string>();
        if (std::none_of(e.blobs.begin(), e.blobs.end(),
                         [&](const oci::Descriptor& d) { return d.digest == digest; }))
            return Unexpected(where + ".record: its result's layer " + digest +
                              " is not one of its blobs");
    }
    e.record = std::move(*record);
    return e;
}

Result<CacheMount> mount_from(const Json& v, const std::string& where) {
    if (!v.is_object() || !v.contains("name") || !v.contains("layer") || !v.at("name").is_string())
        return Unexpected(where + ": expected {\"name\", \"layer\"}");
    CacheMount m;
    m.name = v.at("name").get<std::string>();
    if (!is_hex(m.name, 32)) return Unexpected(where + ": name is not 32 hex digits");
    if (v.contains("id") && v.at("id").is_string()) m.id = v.at("id").get<std::string>();
    if (v.contains("created") && v.at("created").is_number_integer())
        m.created = v.at("created").get<std::int64_t>();
    auto layer = blob_from(v.at("layer"), where + ".layer");
    if (!layer) return Unexpected(layer.error());
    if (layer->media_type != cache_mount_type)
        return Unexpected(where + ".layer: media type " + layer->media_type + ", expected " +
                          std::string(cache_mount_type));
    m.layer = std::move(*layer);
    return m;
}

Json listing_json(const CacheListing& l) {
    Json j;
    j["layer"] = l.layer;
    j["listing"] = oci::to_json(l.listing);
    return j;
}

Result<CacheListing> listing_from(const Json& v, const std::string& where) {
    if (!v.is_object() || !v.contains("layer") || !v.contains("listing") ||
        !v.at("layer").is_string())
        return Unexpected(where + ": expected {\"layer\", \"listing\"}");
    CacheListing l;
    l.layer = v.at("layer").get<std::string>();
    if (!l.layer.starts_with("sha256:") || !is_hex(std::string_view(l.layer).substr(7), 64))
        return Unexpected(where + ".layer: not a sha256 digest: " + l.layer);
    auto listing = blob_from(v.at("listing"), where + ".listing");
    if (!listing) return Unexpected(listing.error());
    if (listing->media_type != cache_blob_type)
        return Unexpected(where + ".listing: media type " + listing->media_type + ", expected " +
                          std::string(cache_blob_type));
    if (listing->size < 0 || static_cast<std::uint64_t>(listing->size) > max_cache_listing_size)
        return Unexpected(where + ".listing: " + std::to_string(listing->size) +
                          " bytes is over the cap of " + std::to_string(max_cache_listing_size));
    l.listing = std::move(*listing);
    return l;
}

// The step an entry belongs to, for `keep`.
std::string group_of(const cache::ActionRecord& r) {
    return r.step_id.empty() ? r.key : r.step_id;
}

} // namespace

bool allowed_blob_type(std::string_view t) {
    return mt::is_layer(t) || mt::is_manifest(t) || mt::is_index(t) || mt::is_config(t) ||
           t == cache_blob_type || t == cache_mount_type;
}

std::string encode_cache_config(const CacheIndex& index) {
    auto entries = index.entries;
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.record.key < b.record.key; });
    auto mounts = index.mounts;
    std::sort(mounts.begin(), mounts.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    Json j;
    j["mediaType"] = std::string(cache_config_type);
    j["version"] = 1;
    auto& e = j["entries"] = Json::array();
    for (const auto& entry : entries)
        e.push_back(entry_json(entry));
    auto& m = j["mounts"] = Json::array();
    for (const auto& mount : mounts)
        m.push_back(mount_json(mount));
    auto listings = index.listings;
    std::sort(listings.begin(), listings.end(),
              [](const auto& a, const auto& b) { return a.layer < b.layer; });
    auto& l = j["listings"] = Json::array();
    for (const auto& listing : listings)
        l.push_back(listing_json(listing));
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<CacheIndex> decode_cache_config(std::string_view bytes) {
    if (bytes.size() > max_cache_config_size)
        return Unexpected("the cache config is larger than " +
                          std::to_string(max_cache_config_size >> 20) + " MiB");
    auto j = Json::parse(bytes, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Unexpected("the cache config is not JSON");
    if (!j.contains("mediaType") || j.at("mediaType") != std::string(cache_config_type))
        return Unexpected("the cache config's mediaType is not " + std::string(cache_config_type));
    if (!j.contains("version") || j.at("version") != 1)
        return Unexpected("the cache config's version is not 1");
    if (!j.contains("entries") || !j.at("entries").is_array() || !j.contains("mounts") ||
        !j.at("mounts").is_array())
        return Unexpected("the cache config has no \"entries\" or \"mounts\" list");
    CacheIndex index;
    std::set<std::string> keys;
    for (std::size_t i = 0; i < j.at("entries").size(); ++i) {
        auto e = entry_from(j.at("entries")[i], "entries[" + std::to_string(i) + "]");
        if (!e) return Unexpected(e.error());
        if (!keys.insert(e->record.key).second)
            return Unexpected("entries[" + std::to_string(i) + "]: key " + e->record.key +
                              " is listed twice");
        index.entries.push_back(std::move(*e));
    }
    std::set<std::string> names;
    for (std::size_t i = 0; i < j.at("mounts").size(); ++i) {
        auto m = mount_from(j.at("mounts")[i], "mounts[" + std::to_string(i) + "]");
        if (!m) return Unexpected(m.error());
        if (!names.insert(m->name).second)
            return Unexpected("mounts[" + std::to_string(i) + "]: " + m->name + " is listed twice");
        index.mounts.push_back(std::move(*m));
    }
    if (!j.contains("listings")) return index; // a cache written before listings were shared
    if (!j.at("listings").is_array())
        return Unexpected("the cache config's \"listings\" is no list");
    std::set<std::string> blobs;
    for (const auto& e : index.entries)
        for (const auto& d : e.blobs)
            blobs.insert(d.digest);
    std::set<std::string> layers;
    for (std::size_t i = 0; i < j.at("listings").size(); ++i) {
        auto where = "listings[" + std::to_string(i) + "]";
        auto l = listing_from(j.at("listings")[i], where);
        if (!l) return Unexpected(l.error());
        if (!blobs.count(l->layer))
            return Unexpected(where + ": " + l->layer + " is not a blob of any entry");
        if (!layers.insert(l->layer).second)
            return Unexpected(where + ": " + l->layer + " is listed twice");
        index.listings.push_back(std::move(*l));
    }
    return index;
}

oci::Manifest cache_manifest(const CacheIndex& index, const oci::Descriptor& config) {
    std::map<std::string, oci::Descriptor> blobs;
    for (const auto& e : index.entries)
        for (const auto& d : e.blobs)
            blobs.emplace(d.digest, d);
    for (const auto& m : index.mounts)
        blobs.emplace(m.layer.digest, m.layer);
    for (const auto& l : index.listings)
        blobs.emplace(l.listing.digest, l.listing);
    oci::Manifest out;
    out.config = config;
    for (auto& [digest, d] : blobs)
        out.layers.push_back(d);
    return out;
}

Result<void> check_cache_manifest(const oci::Manifest& manifest) {
    if (manifest.config.media_type != cache_config_type)
        return Unexpected("its config has media type " + manifest.config.media_type + ", not " +
                          std::string(cache_config_type) + " (not a factory cache)");
    if (manifest.config.size < 0 ||
        static_cast<std::uint64_t>(manifest.config.size) > max_cache_config_size)
        return Unexpected("its config of " + std::to_string(manifest.config.size) +
                          " bytes is over the cap of " + std::to_string(max_cache_config_size) +
                          " bytes");
    for (const auto& l : manifest.layers)
        if (!allowed_blob_type(l.media_type))
            return Unexpected("layer " + l.digest + " has media type " + l.media_type +
                              ", which no cache layer has");
    return {};
}

Result<void> check_cache_layers(const oci::Manifest& manifest, const CacheIndex& index) {
    std::map<std::string, const oci::Descriptor*> layers;
    for (const auto& l : manifest.layers)
        layers[l.digest] = &l;
    auto check = [&](const oci::Descriptor& d) -> Result<void> {
        auto it = layers.find(d.digest);
        if (it == layers.end())
            return Unexpected("blob " + d.digest + " is not one of the manifest's layers");
        if (it->second->size != d.size || it->second->media_type != d.media_type)
            return Unexpected("blob " + d.digest + " has another size or type in the manifest");
        return {};
    };
    for (const auto& e : index.entries)
        for (const auto& d : e.blobs)
            if (auto ok = check(d); !ok) return ok;
    for (const auto& m : index.mounts)
        if (auto ok = check(m.layer); !ok) return ok;
    for (const auto& l : index.listings)
        if (auto ok = check(l.listing); !ok) return ok;
    return {};
}

CacheIndex merge_cache(const CacheIndex& existing, const CacheIndex& incoming, std::size_t keep) {
    std::map<std::string, CacheEntry> by_key;
    for (const auto& e : existing.entries)
        by_key[e.record.key] = e;
    for (const auto& e : incoming.entries)
        by_key[e.record.key] = e;
    std::map<std::string, std::vector<const CacheEntry*>> groups;
    for (const auto& [key, e] : by_key)
        groups[group_of(e.record)].push_back(&e);
    CacheIndex out;
    for (auto& [group, list] : groups) {
        std::sort(list.begin(), list.end(), [](const CacheEntry* a, const CacheEntry* b) {
            if (a->record.created != b->record.created)
                return a->record.created > b->record.created;
            return a->record.key < b->record.key;
        });
        for (std::size_t i = 0; i < list.size() && i < std::max<std::size_t>(keep, 1); ++i)
            out.entries.push_back(*list[i]);
    }
    std::sort(out.entries.begin(), out.entries.end(),
              [](const auto& a, const auto& b) { return a.record.key < b.record.key; });
    std::map<std::string, CacheMount> mounts;
    for (const auto& m : existing.mounts)
        mounts[m.name] = m;
    for (const auto& m : incoming.mounts)
        mounts[m.name] = m;
    for (auto& [name, m] : mounts)
        out.mounts.push_back(std::move(m));
    std::set<std::string> blobs;
    for (const auto& e : out.entries)
        for (const auto& d : e.blobs)
            blobs.insert(d.digest);
    std::map<std::string, CacheListing> listings;
    for (const auto* from : {&existing.listings, &incoming.listings})
        for (const auto& l : *from)
            if (blobs.count(l.layer)) listings[l.layer] = l;
    for (auto& [layer, l] : listings)
        out.listings.push_back(std::move(l));
    return out;
}

} // namespace factory::builder
