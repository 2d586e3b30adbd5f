// Our outputs read by the real peers: skopeo (containers/image) and podman load. Skipped when a
// tool is missing. podman runs with a private --root/--runroot and a generated containers.conf
// (CONTAINERS_CONF, see /work/shared/MACHINE-NOTES.md); the system's configuration and image
// store are never touched.
#include <sys/wait.h>
#include <zlib.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "factory/export/docker_archive.hpp"
#include "factory/export/oci_export.hpp"
#include "factory/export/tar_writer.hpp"
#include "factory/oci/layout.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

using factory::testing::gzip;
using factory::testing::slurp;

using namespace factory;
using namespace factory::oci;
using namespace factory::exporter;
namespace fs = std::filesystem;

namespace {

bool have(const char* tool) {
    return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// Runs a shell command; returns (exit status, stdout+stderr).
std::pair<int, std::string> run(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return {-1, "popen failed"};
    std::array<char, 4096> buf{};
    while (auto n = std::fread(buf.data(), 1, buf.size(), p))
        out.append(buf.data(), n);
    int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

struct Image {
    Layout store;
    Descriptor manifest;
    std::string diff_id;
};

Image build(const fs::path& dir) {
    auto store = Layout::create(dir, {dir / "tmp"});
    auto tar_path = dir / "tmp/layer.tar";
    {
        AtomicFile f(tar_path);
        TarWriter tar(f.fd());
        tar.add_directory("etc/");
        tar.add_file("etc/motd", "built by factory\n");
        tar.finish();
        f.commit();
    }
    auto tar = slurp(tar_path);
    auto layer = store.put_blob(std::string(media_type::layer_gzip), gzip(tar));
    ImageConfig c(Platform{"amd64", "linux", "", {}, ""});
    c.set_created("1970-01-01T00:00:00Z");
    c.set_env({"PATH=/usr/bin:/bin"});
    c.set_cmd({"/bin/sh"});
    c.set_label("org.opencontainers.image.title", "factory <test> & co");
    auto diff_id = "sha256:" + Sha256::hex(tar);
    c.add_layer(diff_id, History{"1970-01-01T00:00:00Z", "factory test", "", "", false});
    Manifest m;
    m.config = store.put_blob(std::string(media_type::config), c.serialize());
    m.layers = {layer};
    auto md = store.put_blob(std::string(media_type::manifest), serialize(m));
    store.set_ref("hello:latest", md);
    return {std::move(store), md, diff_id};
}

std::string q(const fs::path& p) {
    return "'" + p.string() + "'";
}

} // namespace

TEST(Interop, SkopeoReadsAllThreeOutputs) {
    if (!have("skopeo")) GTEST_SKIP() << "skopeo not installed";
    factory::testing::TestDir dir;
    auto img = build(dir / "store");
    export_oci_dir(img.store, img.manifest, dir / "oci", "v1");
    export_oci_archive(img.store, img.manifest, dir / "oci.tar", "v1");
    export_docker_archive(img.store, img.manifest, dir / "docker.tar", "hello:latest");
    auto manifest_hex = *img.manifest.sha256_hex();
    for (auto ref : {"oci:" + (dir / "oci").string() + ":v1",
                     "oci-archive:" + (dir / "oci.tar").string() + ":v1",
                     "oci-archive:" + (dir / "docker.tar").string(),
                     "docker-archive:" + (dir / "docker.tar").string()}) {
        auto [status, out] = run("skopeo inspect '" + ref + "'");
        EXPECT_EQ(status, 0) << ref << "\n" << out;
        EXPECT_NE(out.find("\"Architecture\": \"amd64\""), std::string::npos) << ref << "\n" << out;
        EXPECT_NE(out.find("factory \\u003ctest\\u003e \\u0026 co"), std::string::npos)
            << ref << "\n"
            << out;
        // skopeo's raw manifest is our blob, byte for byte (the docker-archive transport
        // synthesizes a schema2 manifest from manifest.json, so it is not compared).
        if (ref.starts_with("oci")) {
            auto [s2, raw] = run("skopeo inspect --raw '" + ref + "'");
            EXPECT_EQ(s2, 0) << raw;
            EXPECT_EQ(Sha256::hex(raw), manifest_hex) << ref;
        }
    }
    // The store itself is an OCI layout skopeo can read.
    auto [status, out] =
        run("skopeo inspect --raw 'oci:" + (dir / "store").string() + ":hello:latest'");
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(Sha256::hex(out), manifest_hex);
    // And it can copy from our layout into a fresh one, verifying every blob.
    auto [s3, copy] = run("skopeo copy -q 'oci:" + (dir / "oci").string() +
                          ":v1' 'oci:" + (dir / "copy").string() + ":v1'");
    EXPECT_EQ(s3, 0) << copy;
}

TEST(Interop, PodmanLoadsTheDockerArchive) {
    if (!have("podman")) GTEST_SKIP() << "podman not installed";
    factory::testing::TestDir dir;
    auto img = build(dir / "store");
    export_docker_archive(img.store, img.manifest, dir / "docker.tar", "hello:latest");
    export_oci_archive(img.store, img.manifest, dir / "oci.tar", "v1");
    std::ofstream(dir / "containers.conf")
        << "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
           "[engine]\nruntime = \"runc\"\nevents_logger = \"none\"\ncgroup_manager = "
           "\"cgroupfs\"\n";
    std::ofstream(dir / "storage.conf")
        << "[storage]\ndriver = \"vfs\"\nrunroot = \"" << (dir / "runroot").string()
        << "\"\ngraphroot = \"" << (dir / "root").string() << "\"\n";
    auto podman = "CONTAINERS_CONF=" + q(dir / "containers.conf") +
                  " CONTAINERS_STORAGE_CONF=" + q(dir / "storage.conf") + " podman ";
    auto [status, out] = run(podman + "load -i " + q(dir / "docker.tar"));
    ASSERT_EQ(status, 0) << out;
    EXPECT_NE(out.find("docker.io/library/hello:latest"), std::string::npos) << out;
    auto [s2, layers] = run(podman + "image inspect --format '{{.RootFS.Layers}}' hello:latest");
    EXPECT_EQ(s2, 0) << layers;
    EXPECT_NE(layers.find(img.diff_id), std::string::npos) << layers;
    auto [s3, out3] = run(podman + "load -i " + q(dir / "oci.tar"));
    EXPECT_EQ(s3, 0) << out3;
    run(podman + "rmi -a -f");
}
