// What a manifest GET may answer before anything is stored.
#include <gtest/gtest.h>

#include "factory/oci/digest.hpp"
#include "factory/registry/manifest_check.hpp"

using namespace factory::registry;

namespace {

const std::string config_digest = "sha256:" + std::string(64, 'c');
const std::string layer_digest = "sha256:" + std::string(64, 'd');

std::string oci_manifest() {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
           config_digest +
           R"(","size":10},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
           layer_digest + R"(","size":20}]})";
}
std::string oci_index() {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
           config_digest + R"(","size":10,"platform":{"architecture":"amd64","os":"linux"}}]})";
}
constexpr const char* oci_mt = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* index_mt = "application/vnd.oci.image.index.v1+json";

} // namespace

TEST(ManifestCheck, AcceptsAManifestAskedByTagOrDigest) {
    auto bytes = oci_manifest();
    auto digest = factory::oci::Digest::of(bytes).str();
    auto by_tag = check_manifest(bytes, std::string(oci_mt) + "; charset=utf-8", "", "");
    ASSERT_TRUE(by_tag) << by_tag.error();
    EXPECT_EQ(by_tag->digest, digest);
    EXPECT_TRUE(by_tag->manifest);
    EXPECT_EQ(by_tag->manifest->layers.at(0).digest, layer_digest);
    auto by_digest = check_manifest(bytes, oci_mt, digest, oci_mt);
    ASSERT_TRUE(by_digest) << by_digest.error();
    auto index = check_manifest(oci_index(), index_mt, "", "");
    ASSERT_TRUE(index) << index.error();
    EXPECT_TRUE(index->index);
    // application/json from a registry that keeps no media type: the document decides.
    EXPECT_TRUE(check_manifest(bytes, "application/json", "", ""));
}

TEST(ManifestCheck, RejectsWhatWasNotAskedFor) {
    auto bytes = oci_manifest();
    struct Case {
        std::string bytes, content_type, digest, expected, says;
    } cases[] = {
        {bytes, oci_mt, "sha256:" + std::string(64, '0'), "",
         "does not match the digest asked for"},
        {oci_index(), index_mt, "", oci_mt,
         "an index (" + std::string(index_mt) + ") was served where a manifest"},
        {bytes, index_mt, "", "",
         "Content-Type 'application/vnd.oci.image.index.v1+json' but the document says mediaType"},
        {"{not json", oci_mt, "", "", "invalid manifest"},
        {std::string(5u << 20, ' '), oci_mt, "", "", "larger than 4 MiB"},
        {"{}", "text/html", "", "", "not an OCI or Docker schema 2 manifest"},
        {"{}", "application/vnd.docker.distribution.manifest.v1+prettyjws", "", "", "schema 1"},
        {R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:zz","size":1},"layers":[]})",
         oci_mt, "", "", "invalid manifest"},
    };
    for (const auto& c : cases) {
        auto r = check_manifest(c.bytes, c.content_type, c.digest, c.expected);
        ASSERT_FALSE(r) << c.says;
        EXPECT_NE(r.error().find(c.says), std::string::npos) << r.error();
    }
}
