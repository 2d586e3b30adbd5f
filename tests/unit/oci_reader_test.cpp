// The strict readers: every hostile or malformed document is refused with a message that says
// what and where.
#include <gtest/gtest.h>

#include "factory/oci/image_config.hpp"
#include "factory/oci/index.hpp"
#include "factory/oci/json.hpp"
#include "factory/oci/manifest.hpp"

using namespace factory::oci;

namespace {

const std::string A = "sha256:" + std::string(64, 'a');
const std::string B = "sha256:" + std::string(64, 'b');

std::string config_desc(const std::string& extra = "") {
    return R"({"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + A +
           R"(","size":10)" + extra + "}";
}

std::string manifest_with(const std::string& layer_fields, const std::string& top = "") {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
           config_desc() + R"(,"layers":[{)" + layer_fields + "}]" + top + "}";
}

std::string good_layer() {
    return R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + B +
           R"(","size":20)";
}

void expect_manifest_error(const std::string& doc, const std::string& text,
                           std::string_view expected_type = {}) {
    auto m = parse_manifest(doc, expected_type);
    ASSERT_FALSE(m) << doc;
    EXPECT_EQ(m.error(), text) << doc;
}

void expect_index_error(const std::string& doc, const std::string& text,
                        std::string_view expected_type = {}) {
    auto i = parse_index(doc, expected_type);
    ASSERT_FALSE(i) << doc;
    EXPECT_EQ(i.error(), text) << doc;
}

void expect_config_error(const std::string& doc, const std::string& text,
                         std::optional<std::size_t> layers = std::nullopt) {
    auto c = ImageConfig::parse(doc, layers);
    ASSERT_FALSE(c) << doc;
    EXPECT_EQ(c.error(), text) << doc;
}

std::string config_doc(const std::string& rootfs, const std::string& extra = "") {
    return R"({"architecture":"amd64","os":"linux","rootfs":)" + rootfs + extra + "}";
}

} // namespace

TEST(StrictJson, RejectsDuplicateKeysAtAnyDepth) {
    auto r = parse_strict_json(R"({"a":1,"b":{"c":1,"c":2}})");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "invalid JSON: duplicate key \"c\" in an object");
    EXPECT_TRUE(parse_strict_json(R"({"a":{"c":1},"b":{"c":2}})")); // same key, other objects
    expect_manifest_error(
        manifest_with(good_layer()).insert(1, R"("schemaVersion":2,)"),
        "invalid image manifest: invalid JSON: duplicate key \"schemaVersion\" in "
        "an object");
}

TEST(StrictJson, RejectsDeepNestingOversizeAndTrailingData) {
    std::string deep(65, '[');
    deep += std::string(65, ']');
    auto r = parse_strict_json(deep);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "invalid JSON: JSON nested deeper than 64 levels");
    EXPECT_TRUE(parse_strict_json(std::string(64, '[') + std::string(64, ']')));

    auto big = parse_strict_json(std::string((4u << 20) + 1, ' '));
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error(), "JSON document of 4194305 bytes is over the limit of 4194304");

    auto trailing = parse_strict_json(R"({"a":1} {"b":2})");
    ASSERT_FALSE(trailing);
    EXPECT_NE(trailing.error().find("syntax error"), std::string::npos) << trailing.error();
    EXPECT_FALSE(parse_strict_json(""));
    EXPECT_FALSE(parse_strict_json("{\"a\":\"\xff\"}")); // invalid UTF-8
}

TEST(StrictJson, ManyKeysStayLinear) {
    std::string doc = "{";
    for (int i = 0; i < 200000; ++i)
        doc += (i ? ",\"" : "\"") + std::to_string(i) + "\":0";
    doc += "}";
    auto r = parse_strict_json(doc);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->size(), 200000u);
}

TEST(ManifestReader, AcceptsAGoodManifestAndDockerSchema2) {
    auto m = parse_manifest(manifest_with(good_layer()), media_type::manifest);
    ASSERT_TRUE(m) << m.error();
    EXPECT_EQ(m->layers.at(0).digest, B);
    EXPECT_EQ(m->layers.at(0).size, 20);

    std::string docker =
        R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
        R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":")" +
        A +
        R"("},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":20,"digest":")" +
        B + R"("}]})";
    auto d = parse_manifest(docker, media_type::docker_manifest);
    ASSERT_TRUE(d) << d.error();
    EXPECT_EQ(d->media_type, media_type::docker_manifest);
    EXPECT_EQ(media_type::to_oci_layer(d->layers[0].media_type), media_type::layer_gzip);
}

TEST(ManifestReader, RejectsManifestIndexConfusion) {
    expect_manifest_error(manifest_with(good_layer(), R"(,"manifests":[])"),
                          "invalid image manifest: a manifest must not have a \"manifests\" field "
                          "(manifest/index confusion, CVE-2021-41190)");
    expect_index_error(
        R"({"schemaVersion":2,"manifests":[],"config":)" + config_desc() + "}",
        "invalid image index: an index must not have a \"config\" field (manifest/index "
        "confusion, CVE-2021-41190)");
    expect_index_error(R"({"schemaVersion":2,"manifests":[],"layers":[]})",
                       "invalid image index: an index must not have a \"layers\" field "
                       "(manifest/index confusion, CVE-2021-41190)");
}

TEST(ManifestReader, RejectsMediaTypeMismatch) {
    expect_manifest_error(manifest_with(good_layer()),
                          "invalid image manifest: \"mediaType\": "
                          "\"application/vnd.oci.image.manifest.v1+json\" does not match the "
                          "descriptor's \"application/vnd.docker.distribution.manifest.v2+json\"",
                          media_type::docker_manifest);
    expect_manifest_error(manifest_with(good_layer()),
                          "invalid image manifest: expected an image manifest but the descriptor "
                          "says \"application/vnd.oci.image.index.v1+json\"",
                          media_type::index);
    auto as_index = manifest_with(good_layer());
    as_index.replace(as_index.find("image.manifest"), 14, "image.index");
    expect_manifest_error(as_index, "invalid image manifest: \"mediaType\": "
                                    "\"application/vnd.oci.image.index.v1+json\" is not an image "
                                    "manifest media type");
    expect_index_error(
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]})",
        "invalid image index: \"mediaType\": "
        "\"application/vnd.oci.image.manifest.v1+json\" is not an image index "
        "media type");
}

TEST(ManifestReader, RejectsBadFields) {
    expect_manifest_error(manifest_with(good_layer()).replace(17, 1, "1"),
                          "invalid image manifest: \"schemaVersion\": must be 2, not 1");
    expect_manifest_error(R"({"schemaVersion":"2","config":{},"layers":[]})",
                          "invalid image manifest: \"schemaVersion\": must be an integer, not a "
                          "string");
    expect_manifest_error(R"({"schemaVersion":2,"layers":[]})",
                          "invalid image manifest: \"config\": is required");
    expect_manifest_error(R"({"schemaVersion":2,"config":)" + config_desc() + "}",
                          "invalid image manifest: \"layers\": is required");
    expect_manifest_error(R"({"schemaVersion":2,"config":)" + config_desc() + R"(,"layers":{}})",
                          "invalid image manifest: \"layers\": must be an array");
    expect_manifest_error(R"([1,2])", "invalid image manifest: must be an object, not an array");
    expect_manifest_error(
        manifest_with(R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                      B + R"(","size":-1)"),
        "invalid image manifest: \"layers[0].size\": -1 is out of range [0, 9223372036854775807]");
    expect_manifest_error(
        manifest_with(R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                      B + R"(","size":9223372036854775808)"),
        "invalid image manifest: \"layers[0].size\": is out of range");
    expect_manifest_error(
        manifest_with(R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                      B + R"(","size":1.5)"),
        "invalid image manifest: \"layers[0].size\": must be an integer, not a number");
    expect_manifest_error(
        manifest_with(R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                      B + R"(","size":"20")"),
        "invalid image manifest: \"layers[0].size\": must be an integer, not a string");
    expect_manifest_error(
        manifest_with(
            R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:../../etc/passwd","size":1)"),
        "invalid image manifest: \"layers[0].digest\": invalid digest \"sha256:../../etc/passwd\": "
        "sha256 needs exactly 64 lower-case hex digits");
    expect_manifest_error(
        manifest_with(
            R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"","size":1)"),
        "invalid image manifest: \"layers[0].digest\": invalid digest \"\": empty");
    expect_manifest_error(
        manifest_with(R"("mediaType":"no-slash","digest":")" + B + R"(","size":1)"),
        "invalid image manifest: \"layers[0].mediaType\": invalid media type "
        "\"no-slash\"");
    expect_manifest_error(manifest_with(R"("digest":")" + B + R"(","size":1)"),
                          "invalid image manifest: \"layers[0].mediaType\": is required");
    expect_manifest_error(manifest_with(good_layer() + R"(,"annotations":{"a":1})"),
                          "invalid image manifest: \"layers[0].annotations.a\": must be a string, "
                          "not an integer");
    expect_manifest_error(manifest_with(good_layer() + R"(,"urls":"http://x")"),
                          "invalid image manifest: \"layers[0].urls\": must be an array of "
                          "strings, not a string");
    expect_manifest_error(manifest_with(good_layer() + R"(,"platform":{"os":"linux"})"),
                          "invalid image manifest: \"layers[0].platform.architecture\": is "
                          "required");
}

TEST(ManifestReader, ChecksEmbeddedData) {
    // "hello" is aGVsbG8=; sha256 2cf24dba…
    const std::string hello =
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    auto ok = parse_manifest(manifest_with(R"("mediaType":"text/plain","digest":")" + hello +
                                           R"(","size":5,"data":"aGVsbG8=")"));
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_EQ(ok->layers[0].data, "hello");
    expect_manifest_error(manifest_with(R"("mediaType":"text/plain","digest":")" + hello +
                                        R"(","size":5,"data":"aGVsbE8=")"),
                          "invalid image manifest: \"layers[0].data\": does not match the digest " +
                              hello);
    expect_manifest_error(
        manifest_with(R"("mediaType":"text/plain","digest":")" + hello +
                      R"(","size":4,"data":"aGVsbG8=")"),
        "invalid image manifest: \"layers[0].data\": has 5 bytes but size says 4");
    expect_manifest_error(manifest_with(R"("mediaType":"text/plain","digest":")" + hello +
                                        R"(","size":5,"data":"aGVsbG8")"),
                          "invalid image manifest: \"layers[0].data\": is not valid base64");
}

TEST(IndexReader, AcceptsIndexesAndSelectsPlatforms) {
    std::string doc =
        R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[)"
        R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" +
        A +
        R"(","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},)"
        R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" +
        B + R"(","size":1,"platform":{"architecture":"amd64","os":"linux"}}]})";
    auto i = parse_index(doc, media_type::docker_manifest_list);
    ASSERT_TRUE(i) << i.error();
    auto amd = select_platform(*i, Platform{"amd64", "linux", "", {}, ""});
    ASSERT_TRUE(amd);
    EXPECT_EQ(amd->digest, B);
    EXPECT_EQ(select_platform(*i, Platform{"arm", "linux", "", {}, "v6"}), nullptr);
    EXPECT_EQ(select_platform(*i, Platform{"arm", "linux", "", {}, "v7"})->digest, A);
    expect_index_error(R"({"schemaVersion":2})", "invalid image index: \"manifests\": is required");
    expect_index_error(
        R"({"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"sha256:x","size":1}]})",
        "invalid image index: \"manifests[0].digest\": invalid digest \"sha256:x\": "
        "sha256 needs exactly 64 lower-case hex digits");
}

TEST(ConfigReader, RejectsBadConfigs) {
    auto rootfs = R"({"type":"layers","diff_ids":[")" + A + R"("]})";
    EXPECT_TRUE(ImageConfig::parse(config_doc(rootfs), 1));
    expect_config_error(config_doc(rootfs),
                        "invalid image config: \"rootfs.diff_ids\": has 1 "
                        "entries but the manifest has 2 layers",
                        2);
    expect_config_error(config_doc(R"({"type":"other","diff_ids":[]})"),
                        "invalid image config: \"rootfs.type\": must be \"layers\", not \"other\"");
    expect_config_error(config_doc(R"({"type":"layers","diff_ids":["sha256:AB"]})"),
                        "invalid image config: \"rootfs.diff_ids[0]\": invalid digest "
                        "\"sha256:AB\": sha256 needs exactly 64 lower-case hex digits");
    expect_config_error(R"({"architecture":"amd64","os":"linux"})",
                        "invalid image config: \"rootfs\": is required");
    expect_config_error(R"({"os":"linux","rootfs":{"type":"layers","diff_ids":[]}})",
                        "invalid image config: \"architecture\": is required");
    expect_config_error(config_doc(rootfs, R"(,"config":{"Env":"A=b"})"),
                        "invalid image config: \"config.Env\": must be an array of strings, not a "
                        "string");
    expect_config_error(config_doc(rootfs, R"(,"config":{"Labels":{"a":true}})"),
                        "invalid image config: \"config.Labels.a\": must be a string, not a "
                        "boolean");
    expect_config_error(config_doc(rootfs, R"(,"created":"yesterday")"),
                        "invalid image config: \"created\": \"yesterday\" is not an RFC 3339 time");
    expect_config_error(config_doc(rootfs, R"(,"history":[{"empty_layer":"yes"}])"),
                        "invalid image config: \"history[0].empty_layer\": must be a boolean, not "
                        "a string");
    // null equals absent (config.md).
    EXPECT_TRUE(ImageConfig::parse(
        config_doc(R"({"type":"layers","diff_ids":null})", R"(,"config":null,"history":null)"), 0));
}
