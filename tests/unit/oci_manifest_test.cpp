// Exact bytes of the JSON documents we write, compared with what Go's encoding/json writes for the
// image-spec v1.1.1 structs (hand-derived: field order of specs-go/v1, omitempty, sorted map keys,
// HTML escaping, no whitespace, no trailing newline).
#include <gtest/gtest.h>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/digest.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/index.hpp"
#include "factory/oci/json.hpp"
#include "factory/oci/manifest.hpp"

using namespace factory::oci;

namespace {

const std::string A = "sha256:" + std::string(64, 'a');
const std::string B = "sha256:" + std::string(64, 'b');
const std::string C = "sha256:" + std::string(64, 'c');

Descriptor desc(std::string mt, std::string digest, std::int64_t size) {
    Descriptor d;
    d.media_type = std::move(mt);
    d.digest = std::move(digest);
    d.size = size;
    return d;
}

} // namespace

TEST(GoJson, EscapesLikeEncodingJson) {
    std::string out;
    go_append_string(out, "<a&b>\"\\\n\r\t\b\f\x01\x1f\x7f é \xe2\x80\xa8\xe2\x80\xa9");
    EXPECT_EQ(out, R"("\u003ca\u0026b\u003e\"\\\n\r\t\b\f\u0001\u001f)"
                   "\x7f é "
                   R"(\u2028\u2029")");
    out.clear();
    go_append_string(out, "bad \xff\xc3( utf8 \xed\xa0\x80"); // invalid bytes → U+FFFD each
    EXPECT_EQ(out, R"("bad \ufffd\ufffd( utf8 \ufffd\ufffd\ufffd")");
}

TEST(GoJson, NumbersLikeEncodingJson) {
    Json j = Json::array({1, -2, std::uint64_t(18446744073709551615ull), 1.5, 1.0, 1e21, 1e-7,
                          0.000001, 123456789.0, -0.0});
    EXPECT_EQ(go_marshal(j), "[1,-2,18446744073709551615,1.5,1,1e+21,1e-7,0.000001,123456789,-0]");
}

TEST(ManifestJson, ExactBytes) {
    Manifest m;
    m.config = desc(std::string(media_type::config), A, 1234);
    m.layers.push_back(desc(std::string(media_type::layer_gzip), B, 5678));
    m.annotations["org.opencontainers.image.created"] = "1970-01-01T00:00:00Z";
    m.annotations["a"] = "<&>";
    EXPECT_EQ(serialize(m),
              R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
              R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                  A +
                  R"(","size":1234},)"
                  R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",)"
                  R"("digest":")" +
                  B +
                  R"(","size":5678}],)"
                  R"("annotations":{"a":"\u003c\u0026\u003e",)"
                  R"("org.opencontainers.image.created":"1970-01-01T00:00:00Z"}})");
}

TEST(ManifestJson, EmptyLayersAreAnArrayAndArtifactFieldsInOrder) {
    Manifest m;
    m.artifact_type = "application/vnd.example+type";
    m.config = desc(std::string(media_type::empty),
                    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", 2);
    m.config.data = "{}";
    m.subject = desc(std::string(media_type::manifest), C, 7);
    EXPECT_EQ(
        serialize(m),
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
        R"("artifactType":"application/vnd.example+type",)"
        R"("config":{"mediaType":"application/vnd.oci.empty.v1+json",)"
        R"("digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",)"
        R"("size":2,"data":"e30="},"layers":[],)"
        R"("subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
            C + R"(","size":7}})");
}

TEST(DescriptorJson, FieldOrderOfTheGoStruct) {
    Descriptor d = desc(std::string(media_type::manifest), A, 10);
    d.urls = {"https://example.com/x"};
    d.annotations = {{"z", "1"}, {"b", "2"}};
    d.data = "0123456789";
    d.data = std::nullopt; // data must match size+digest; tested in the reader tests
    Platform p;
    p.architecture = "arm64";
    p.os = "linux";
    p.os_version = "10.0";
    p.os_features = {"f1"};
    p.variant = "v8";
    d.platform = p;
    d.artifact_type = "application/x";
    EXPECT_EQ(go_marshal(to_json(d)),
              R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + A +
                  R"(","size":10,"urls":["https://example.com/x"],"annotations":{"b":"2","z":"1"},)"
                  R"("platform":{"architecture":"arm64","os":"linux","os.version":"10.0",)"
                  R"("os.features":["f1"],"variant":"v8"},"artifactType":"application/x"})");
}

TEST(IndexJson, ExactBytesAndEmptyManifests) {
    Index empty;
    EXPECT_EQ(serialize(empty),
              R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
              R"("manifests":[]})");
    Index i;
    auto d = desc(std::string(media_type::manifest), A, 500);
    d.annotations[annotation::ref_name] = "hello:latest";
    d.platform = Platform{"amd64", "linux", "", {}, ""};
    i.manifests.push_back(d);
    EXPECT_EQ(serialize(i),
              R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
              R"("manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
              R"("digest":")" +
                  A +
                  R"(","size":500,)"
                  R"("annotations":{"org.opencontainers.image.ref.name":"hello:latest"},)"
                  R"("platform":{"architecture":"amd64","os":"linux"}}]})");
}

TEST(ImageConfigJson, ExactBytesOfABuiltConfig) {
    ImageConfig c(Platform{"amd64", "linux", "", {}, ""});
    c.set_created("1970-01-01T00:00:00Z");
    c.set_author("factory");
    c.set_env({"PATH=/usr/bin:/bin", "A=<b>"});
    c.set_entrypoint({"/bin/sh", "-c"});
    c.set_cmd({"echo hi"});
    c.set_user("1000:1000");
    c.set_working_dir("/app");
    c.set_label("z.label", "1");
    c.set_label("a.label", "2");
    c.add_exposed_port("80/tcp");
    c.add_exposed_port("443/tcp");
    c.add_volume("/data");
    c.set_stop_signal("SIGTERM");
    c.add_layer(A, History{"1970-01-01T00:00:00Z", "copy a b", "", "", false});
    c.add_empty_layer_history(History{"1970-01-01T00:00:00Z", "ENV A=b", "", "", true});
    c.add_layer(B, History{"", "run make", "", "step 2", false});
    EXPECT_EQ(
        c.serialize(),
        R"({"created":"1970-01-01T00:00:00Z","author":"factory","architecture":"amd64",)"
        R"("os":"linux","config":{"User":"1000:1000","ExposedPorts":{"443/tcp":{},"80/tcp":{}},)"
        R"("Env":["PATH=/usr/bin:/bin","A=\u003cb\u003e"],"Entrypoint":["/bin/sh","-c"],)"
        R"("Cmd":["echo hi"],"Volumes":{"/data":{}},"WorkingDir":"/app",)"
        R"("Labels":{"a.label":"2","z.label":"1"},"StopSignal":"SIGTERM"},)"
        R"("rootfs":{"type":"layers","diff_ids":[")" +
            A + R"(",")" + B +
            R"("]},)"
            R"("history":[{"created":"1970-01-01T00:00:00Z","created_by":"copy a b"},)"
            R"({"created":"1970-01-01T00:00:00Z","created_by":"ENV A=b","empty_layer":true},)"
            R"({"created_by":"run make","comment":"step 2"}]})");
    EXPECT_EQ(c.diff_ids(), (std::vector<std::string>{A, B}));
}

TEST(ImageConfigJson, MinimalConfigAlwaysHasConfigAndRootfs) {
    ImageConfig c(Platform{"arm64", "linux", "", {}, "v8"});
    // image-spec v1.1.1: Config has omitempty, which Go ignores for a struct: always written.
    EXPECT_EQ(c.serialize(), R"({"architecture":"arm64","os":"linux","variant":"v8","config":{},)"
                             R"("rootfs":{"type":"layers","diff_ids":[]}})");
}

TEST(ImageConfigJson, BaseConfigIsCanonicalizedAndKeepsUnknownFields) {
    // A Docker-style config: unknown fields, fields out of Go order, empty values, odd times.
    std::string docker = R"({"os":"linux","architecture":"amd64",
        "docker_version":"24.0.7","container":"abc",
        "config":{"Hostname":"","Env":["PATH=/bin"],"Cmd":null,"Image":"sha256:x",
                  "Labels":{"b":"1","a":"2"},"ExposedPorts":{"8080/tcp":{"x":1}},"AttachStdin":false,
                  "OnBuild":null},
        "rootfs":{"diff_ids":[")" +
                         A + R"("],"type":"layers"},
        "created":"2024-01-02T03:04:05.120000000+00:00",
        "history":[{"created_by":"/bin/sh","created":"2024-01-02t03:04:05.000Z","empty_layer":false}]})";
    auto c = ImageConfig::parse(docker, 1);
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ(c->serialize(),
              R"({"created":"2024-01-02T03:04:05.12Z","architecture":"amd64","os":"linux",)"
              R"("config":{"ExposedPorts":{"8080/tcp":{}},"Env":["PATH=/bin"],)"
              R"("Labels":{"a":"2","b":"1"},"AttachStdin":false,"Hostname":"",)"
              R"("Image":"sha256:x","OnBuild":null},)"
              R"("rootfs":{"type":"layers","diff_ids":[")" +
                  A +
                  R"("]},)"
                  R"("history":[{"created":"2024-01-02T03:04:05Z","created_by":"/bin/sh"}],)"
                  R"("container":"abc","docker_version":"24.0.7"})");
    // Building on it.
    c->set_env_var("PATH", "/usr/bin");
    c->set_env_var("NODE_ENV", "production");
    EXPECT_EQ(c->env(), (std::vector<std::string>{"PATH=/usr/bin", "NODE_ENV=production"}));
    c->add_layer(B, History{"1970-01-01T00:00:00Z", "step", "", "", false});
    EXPECT_EQ(c->diff_ids().size(), 2u);
    auto again = ImageConfig::parse(c->serialize(), 2);
    ASSERT_TRUE(again) << again.error();
    EXPECT_EQ(again->serialize(), c->serialize());
}

TEST(ManifestJson, RoundTripThroughTheReader) {
    Manifest m;
    m.config = desc(std::string(media_type::config), A, 1);
    m.layers = {desc(std::string(media_type::layer_gzip), B, 2),
                desc(std::string(media_type::layer_zstd), C, 3)};
    m.annotations["k"] = "v";
    auto bytes = serialize(m);
    auto back = parse_manifest(bytes, media_type::manifest);
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ(*back, m);
    EXPECT_EQ(serialize(*back), bytes);
}

TEST(Digest, StrictParse) {
    auto ok = Digest::parse(A);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->algorithm(), "sha256");
    EXPECT_EQ(ok->encoded(), std::string(64, 'a'));
    EXPECT_EQ(ok->str(), A);
    EXPECT_EQ(*ok->sha256_hex(), std::string(64, 'a'));

    auto expect_error = [](std::string_view in, std::string_view text) {
        auto d = Digest::parse(in);
        ASSERT_FALSE(d) << in;
        EXPECT_EQ(d.error(), text) << in;
    };
    expect_error("", "invalid digest \"\": empty");
    expect_error("sha256:" + std::string(64, 'A'),
                 "invalid digest \"sha256:" + std::string(64, 'A') +
                     "\": sha256 needs exactly 64 lower-case hex digits");
    expect_error("sha256:../x",
                 "invalid digest \"sha256:../x\": sha256 needs exactly 64 lower-case "
                 "hex digits");
    expect_error("sha256:" + std::string(63, 'a'),
                 "invalid digest \"sha256:" + std::string(63, 'a') +
                     "\": sha256 needs exactly 64 lower-case hex digits");
    expect_error("sha256", "invalid digest \"sha256\": expected algorithm:hex");
    expect_error("md5:" + std::string(32, 'a'), "invalid digest \"md5:" + std::string(32, 'a') +
                                                    "\": unsupported algorithm \"md5\" (sha256 "
                                                    "or sha512)");
    expect_error("sha512:" + std::string(64, 'a'),
                 "invalid digest \"sha512:" + std::string(64, 'a') +
                     "\": sha512 needs exactly 128 lower-case hex digits");

    // sha512 is readable but not verifiable.
    auto s512 = Digest::parse("sha512:" + std::string(128, 'e'));
    ASSERT_TRUE(s512);
    auto hex = s512->sha256_hex();
    ASSERT_FALSE(hex);
    EXPECT_NE(hex.error().find("uses sha512, which factory cannot verify (only sha256 content is "
                               "supported)"),
              std::string::npos)
        << hex.error();
    EXPECT_EQ(Digest::of("hello").str(),
              "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}
