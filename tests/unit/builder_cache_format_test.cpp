// The registry cache's config and manifest (cache_format.hpp): what is encoded decodes to the
// same entries, hostile configs are refused with a reason, and a merge keeps the newest entries
// of each step and the listings of their layers.

#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "factory/builder/cache_format.hpp"
#include "factory/builder/remote_cache.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/util/error.hpp"
#include "factory/util/sha256.hpp"

using namespace factory::builder;
namespace mt = factory::oci::media_type;

namespace {

std::string hex(const std::string& seed) {
    return factory::Sha256::hex(seed);
}

CacheEntry entry(const std::string& key_seed, const std::string& step_seed, std::int64_t created,
                 const std::string& blob_seed = "layer") {
    CacheEntry e;
    e.record.key = hex(key_seed);
    e.record.step_id = step_seed.empty() ? "" : hex(step_seed);
    e.record.created = created;
    e.record.fields = {{"format", "factory-key/2"}, {"kind", "run"}};
    e.record.blobs = {hex(blob_seed)};
    factory::oci::Descriptor d;
    d.media_type = std::string(mt::layer_gzip);
    d.digest = "sha256:" + hex(blob_seed);
    d.size = 123;
    e.record.result = {{"layer", {{"mediaType", d.media_type}, {"digest", d.digest}}}};
    e.blobs = {d};
    return e;
}

factory::oci::Descriptor desc(std::string_view type, const std::string& seed, std::int64_t size) {
    factory::oci::Descriptor d;
    d.media_type = std::string(type);
    d.digest = "sha256:" + hex(seed);
    d.size = size;
    return d;
}

CacheListing listing_of(const std::string& blob_seed, const std::string& body_seed) {
    CacheListing l;
    l.layer = "sha256:" + hex(blob_seed);
    l.listing = desc(cache_blob_type, body_seed, 40);
    return l;
}

std::vector<std::string> listed(const CacheIndex& index) {
    std::vector<std::string> out;
    for (const auto& l : index.listings)
        out.push_back(l.layer);
    return out;
}

std::vector<std::string> keys(const CacheIndex& index) {
    std::vector<std::string> out;
    for (const auto& e : index.entries)
        out.push_back(e.record.key);
    return out;
}

TEST(CacheFormat, RoundTrip) {
    CacheIndex index;
    index.entries = {entry("b", "s1", 2), entry("a", "s2", 1, "other")};
    CacheMount m;
    m.name = hex("apt").substr(0, 32);
    m.id = "/var/cache/apt";
    m.created = 5;
    m.layer = desc(cache_mount_type, "m", 9);
    index.mounts = {m};
    index.listings = {listing_of("other", "listing of other"), listing_of("layer", "listing")};
    auto text = encode_cache_config(index);
    auto back = decode_cache_config(text);
    ASSERT_TRUE(back) << back.error();
    ASSERT_EQ(2u, back->entries.size());
    EXPECT_LT(back->entries[0].record.key, back->entries[1].record.key); // sorted by key
    for (const auto& e : back->entries)
        EXPECT_EQ(e.record.key == hex("a") ? hex("s2") : hex("s1"), e.record.step_id);
    EXPECT_EQ(back->entries[0].record.blobs[0], *back->entries[0].blobs[0].sha256_hex());
    ASSERT_EQ(1u, back->mounts.size());
    EXPECT_EQ("/var/cache/apt", back->mounts[0].id);
    ASSERT_EQ(2u, back->listings.size());
    EXPECT_LT(back->listings[0].layer, back->listings[1].layer); // sorted by layer
    for (const auto& l : back->listings)
        EXPECT_EQ(l.layer == "sha256:" + hex("other") ? "sha256:" + hex("listing of other")
                                                      : "sha256:" + hex("listing"),
                  l.listing.digest);
    EXPECT_EQ(text, encode_cache_config(*back)) << "encoding is stable";

    auto config = factory::oci::describe(std::string(cache_config_type), text);
    auto manifest = cache_manifest(*back, config);
    EXPECT_EQ(5u, manifest.layers.size()); // two layers, the mount and two listings, each once
    EXPECT_TRUE(check_cache_manifest(manifest));
    EXPECT_TRUE(check_cache_layers(manifest, *back));
    manifest.layers.erase(
        std::remove_if(manifest.layers.begin(), manifest.layers.end(),
                       [](const auto& d) { return d.digest == "sha256:" + hex("listing"); }),
        manifest.layers.end());
    auto missing = check_cache_layers(manifest, *back);
    ASSERT_FALSE(missing) << "a listing the manifest does not carry";
    EXPECT_NE(std::string::npos, missing.error().find("is not one of the manifest's layers"));
}

// A cache written before listings were shared has no "listings": it reads as one with none.
TEST(CacheFormat, ConfigWithoutListings) {
    CacheIndex index;
    index.entries = {entry("a", "s", 1)};
    auto j = nlohmann::json::parse(encode_cache_config(index));
    ASSERT_TRUE(j.contains("listings"));
    j.erase("listings");
    auto back = decode_cache_config(j.dump());
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ(1u, back->entries.size());
    EXPECT_TRUE(back->listings.empty());
}

TEST(CacheFormat, HostileConfigsAreRefused) {
    CacheIndex index;
    index.entries = {entry("a", "s", 1)};
    auto good = nlohmann::json::parse(encode_cache_config(index));
    auto refused = [](const nlohmann::json& j, const std::string& why) {
        auto text = j.is_string() ? j.get<std::string>() : j.dump();
        auto r = decode_cache_config(text);
        ASSERT_FALSE(r) << "accepted: " << text;
        EXPECT_NE(std::string::npos, r.error().find(why)) << r.error();
    };
    auto bad = [&](auto change) {
        auto j = good;
        change(j);
        return j;
    };
    auto entry0 = [](nlohmann::json& j) -> nlohmann::json& { return j["entries"][0]; };
    ASSERT_TRUE(decode_cache_config(good.dump()));
    refused(nlohmann::json::array(), "not JSON");
    refused(bad([](auto& j) { j["version"] = 2; }), "version is not 1");
    refused(bad([](auto& j) { j["mediaType"] = "application/json"; }), "mediaType");
    refused(bad([&](auto& j) {
                entry0(j)["record"]["result"]["layer"]["digest"] = "sha256:" + hex("x");
            }),
            "is not one of its blobs");
    refused(bad([&](auto& j) { entry0(j)["blobs"][0]["digest"] = "sha256:" + hex("x"); }),
            "is not the record's blob");
    refused(bad([&](auto& j) { entry0(j)["blobs"].push_back(entry0(j)["blobs"][0]); }),
            "2 descriptors for a record of 1 blobs");
    refused(bad([&](auto& j) { entry0(j)["blobs"][0]["mediaType"] = "text/html"; }),
            "is not a cache blob's");
    refused(bad([&](auto& j) { entry0(j)["record"]["key"] = "../../etc"; }), "record");
    refused(bad([&](auto& j) { j["entries"].push_back(entry0(j)); }), "listed twice");
    refused(bad([](auto& j) {
                j["mounts"].push_back({{"name", "../x"}, {"layer", nlohmann::json::object()}});
            }),
            "name is not 32 hex digits");
    refused(nlohmann::json(std::string(max_cache_config_size + 1, ' ')), "larger than");

    auto listing0 = [](nlohmann::json& j) -> nlohmann::json& { return j["listings"][0]; };
    index.listings = {listing_of("layer", "listing")};
    good = nlohmann::json::parse(encode_cache_config(index));
    ASSERT_TRUE(decode_cache_config(good.dump()));
    refused(bad([](auto& j) { j["listings"] = "all"; }), "\"listings\" is no list");
    refused(bad([&](auto& j) { listing0(j)["layer"] = "sha256:" + hex("x"); }),
            "is not a blob of any entry");
    refused(bad([&](auto& j) { listing0(j)["layer"] = "../../etc"; }), "not a sha256 digest");
    refused(bad([&](auto& j) { j["listings"].push_back(listing0(j)); }), "is listed twice");
    refused(bad([&](auto& j) { listing0(j)["listing"]["mediaType"] = mt::layer_gzip; }),
            "expected application/vnd.factory.cache.blob.v1");
    refused(bad([&](auto& j) { listing0(j)["listing"]["size"] = max_cache_listing_size + 1; }),
            "over the cap");
    refused(bad([&](auto& j) { listing0(j).erase("listing"); }), "expected {\"layer\"");
}

TEST(CacheFormat, ManifestChecks) {
    factory::oci::Manifest m;
    m.config = desc(mt::config, "c", 10);
    EXPECT_FALSE(check_cache_manifest(m)) << "an image config is no cache";
    m.config.media_type = std::string(cache_config_type);
    m.config.size = static_cast<std::int64_t>(max_cache_config_size) + 1;
    auto big = check_cache_manifest(m);
    ASSERT_FALSE(big);
    EXPECT_NE(std::string::npos, big.error().find("over the cap"));
    m.config.size = 10;
    m.layers = {desc("application/x-evil", "l", 1)};
    EXPECT_FALSE(check_cache_manifest(m));
    // An entry's blob that the manifest does not list.
    CacheIndex index;
    index.entries = {entry("a", "s", 1)};
    m.layers.clear();
    EXPECT_FALSE(check_cache_layers(m, index));
}

TEST(CacheFormat, MergeKeepsNewestPerStep) {
    CacheIndex there;
    there.entries = {entry("old1", "step", 1), entry("old2", "step", 2), entry("agentA", "a", 1)};
    CacheIndex mine;
    mine.entries = {entry("new", "step", 3), entry("agentB", "b", 1)};
    auto merged = merge_cache(there, mine, 2);
    auto k = keys(merged);
    std::sort(k.begin(), k.end());
    std::vector<std::string> want = {hex("agentA"), hex("agentB"), hex("new"), hex("old2")};
    std::sort(want.begin(), want.end());
    EXPECT_EQ(want, k) << "A's entry survives B's export; the oldest of 'step' falls out";

    // The same key again: the incoming record replaces the old one.
    CacheIndex again;
    again.entries = {entry("agentA", "a", 9)};
    auto replaced = merge_cache(merged, again, 2);
    for (const auto& e : replaced.entries)
        if (e.record.key == hex("agentA")) {
            EXPECT_EQ(9, e.record.created);
        }
    EXPECT_EQ(4u, replaced.entries.size());
}

TEST(CacheFormat, MergeKeepsTheListingsOfKeptEntries) {
    CacheIndex there;
    there.entries = {entry("old", "step", 1, "old layer"), entry("a", "a", 1, "a layer")};
    there.listings = {listing_of("old layer", "old listing"), listing_of("a layer", "a listing")};
    CacheIndex mine;
    mine.entries = {entry("new", "step", 2, "new layer")};
    mine.listings = {listing_of("new layer", "new listing"),
                     listing_of("a layer", "a listing, read again")};
    auto merged = merge_cache(there, mine, 1);
    std::vector<std::string> want = {"sha256:" + hex("a layer"), "sha256:" + hex("new layer")};
    std::sort(want.begin(), want.end());
    EXPECT_EQ(want, listed(merged)) << "the dropped entry's listing goes with it";
    for (const auto& l : merged.listings)
        if (l.layer == "sha256:" + hex("a layer")) {
            EXPECT_EQ("sha256:" + hex("a listing, read again"), l.listing.digest);
        }
    EXPECT_TRUE(decode_cache_config(encode_cache_config(merged)));
}

TEST(CacheRefs, Parse) {
    auto r = parse_cache_ref("docker://127.0.0.1:5000/ci/cache:main,mode=min,keep=7", "--cache-to",
                             CacheUse::write);
    EXPECT_EQ("127.0.0.1:5000", r.ref.host);
    EXPECT_EQ("ci/cache", r.ref.repository);
    EXPECT_EQ("main", r.ref.tag);
    EXPECT_EQ(CacheMode::min, r.mode);
    EXPECT_EQ(7u, r.keep);
    EXPECT_EQ(CacheMode::max, parse_cache_ref("docker://h.io/c", "x", CacheUse::write).mode);
    EXPECT_THROW(parse_cache_ref("oci:dir", "--cache-to", CacheUse::write), factory::Error);
    EXPECT_THROW(parse_cache_ref("docker://h.io/c,keep=0", "--cache-to", CacheUse::write),
                 factory::Error);
    EXPECT_THROW(parse_cache_ref("docker://h.io/c,mode=mid", "--cache-to", CacheUse::write),
                 factory::Error);
    EXPECT_THROW(
        parse_cache_ref("docker://h.io/c@sha256:" + hex("d"), "--cache-to", CacheUse::write),
        factory::Error);
}

// mode= and keep= say what an export writes: --cache-from and cache import reject them.
TEST(CacheRefs, ReadingTakesNoOptions) {
    auto r = parse_cache_ref("docker://h.io/c:t", "--cache-from", CacheUse::read);
    EXPECT_EQ("c", r.ref.repository);
    auto message = [](const std::string& text, CacheUse use) -> std::string {
        try {
            parse_cache_ref(text, "--cache-from", use);
        } catch (const factory::Error& e) {
            EXPECT_EQ(factory::ExitCode::usage, e.code());
            return e.what();
        }
        return "no error";
    };
    EXPECT_EQ("--cache-from docker://h.io/c:t,mode=max: 'mode=max' is an option for writing a "
              "cache (--cache-to, cache export); reading one takes none",
              message("docker://h.io/c:t,mode=max", CacheUse::read));
    EXPECT_EQ("--cache-from docker://h.io/c:t,keep=2: 'keep=2' is an option for writing a cache "
              "(--cache-to, cache export); reading one takes none",
              message("docker://h.io/c:t,keep=2", CacheUse::read));
    EXPECT_EQ("--cache-from oci:dir: expected docker://HOST/REPO[:TAG]",
              message("oci:dir", CacheUse::read));
    EXPECT_EQ("--cache-from oci:dir: expected docker://HOST/REPO[:TAG][,mode=min|max][,keep=N]",
              message("oci:dir", CacheUse::write));
}

} // namespace
