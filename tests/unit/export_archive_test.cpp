// Exporting images from the store: oci:DIR, oci-archive:FILE, docker-archive:FILE.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>
#include <memory>

#include "factory/export/docker_archive.hpp"
#include "factory/export/export.hpp"
#include "factory/export/image_files.hpp"
#include "factory/export/oci_export.hpp"
#include "factory/export/tar_writer.hpp"
#include "factory/oci/import.hpp"
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

// A one-file layer tar, deterministic.
std::string layer_tar(const fs::path& scratch, const std::string& content) {
    auto path = scratch / "layer.tar";
    {
        AtomicFile f(path);
        TarWriter tar(f.fd());
        tar.add_file("hello.txt", content);
        tar.finish();
        f.commit();
    }
    return slurp(path);
}

struct Built {
    Layout store;
    Descriptor manifest;
    std::string layer_hex, config_hex, diff_id;
};

// A store at dir with one image "hello:latest": one gzip layer, its config and manifest.
Built build_store(const fs::path& dir, const std::string& content = "hello from factory\n") {
    auto store = Layout::create(dir, {dir / "tmp"});
    auto tar = layer_tar(dir / "tmp", content);
    auto layer = store.put_blob(std::string(media_type::layer_gzip), gzip(tar));
    ImageConfig c(Platform{"amd64", "linux", "", {}, ""});
    c.set_created("1970-01-01T00:00:00Z");
    c.set_cmd({"/hello.txt"});
    c.add_layer("sha256:" + Sha256::hex(tar),
                History{"1970-01-01T00:00:00Z", "copy", "", "", false});
    Manifest m;
    m.config = store.put_blob(std::string(media_type::config), c.serialize());
    m.layers = {layer};
    auto md = store.put_blob(std::string(media_type::manifest), serialize(m));
    store.set_ref("hello:latest", md);
    return {std::move(store), md, *layer.sha256_hex(), *m.config.sha256_hex(),
            "sha256:" + Sha256::hex(tar)};
}

struct TarItem {
    std::string name;
    unsigned type;
    unsigned perm;
    long mtime;
    long uid, gid;
    std::string uname;
    std::string content;
};

std::vector<TarItem> read_tar(const fs::path& file) {
    std::vector<TarItem> out;
    std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
    archive_read_support_format_tar(a.get());
    EXPECT_EQ(archive_read_open_filename(a.get(), file.c_str(), 1 << 16), ARCHIVE_OK);
    archive_entry* e = nullptr;
    while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
        TarItem t{archive_entry_pathname(e),
                  archive_entry_filetype(e),
                  static_cast<unsigned>(archive_entry_perm(e)),
                  static_cast<long>(archive_entry_mtime(e)),
                  static_cast<long>(archive_entry_uid(e)),
                  static_cast<long>(archive_entry_gid(e)),
                  archive_entry_uname(e) ? archive_entry_uname(e) : "",
                  {}};
        if (t.type == AE_IFREG && t.name.size() < 64 + 13) {
            t.content.resize(static_cast<std::size_t>(archive_entry_size(e)));
            archive_read_data(a.get(), t.content.data(), t.content.size());
        }
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<std::string> names(const std::vector<TarItem>& items) {
    std::vector<std::string> out;
    for (const auto& i : items)
        out.push_back(i.name);
    return out;
}

const TarItem& item(const std::vector<TarItem>& items, const std::string& name) {
    for (const auto& i : items)
        if (i.name == name) return i;
    throw std::runtime_error("no tar entry " + name);
}

} // namespace

TEST(ExportOciArchive, RoundTripKeepsTheManifestDigest) {
    factory::testing::TestDir dir;
    auto b = build_store(dir / "store");
    export_oci_archive(b.store, b.manifest, dir / "out.tar", "v1");
    auto other = Layout::create(dir / "other", {dir / "other/tmp"});
    auto r = import_oci_archive(dir / "out.tar", "v1", other.blobs());
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->manifest_desc.digest, b.manifest.digest);
    EXPECT_EQ(r->manifest_desc.size, b.manifest.size);
    EXPECT_EQ(r->config.diff_ids(), std::vector<std::string>{b.diff_id});
    EXPECT_EQ(slurp(other.blobs().path(b.layer_hex)), slurp(b.store.blobs().path(b.layer_hex)))
        << "layers are carried byte for byte";
}

TEST(ExportOciArchive, TarIsDeterministicAndSorted) {
    factory::testing::TestDir dir;
    auto b1 = build_store(dir / "store1");
    ::umask(077);
    auto b2 = build_store(dir / "somewhere/else/store2"); // another path, another umask
    ::umask(022);
    export_oci_archive(b1.store, b1.manifest, dir / "a.tar", "v1");
    ::sleep(1);
    export_oci_archive(b2.store, b2.manifest, dir / "b.tar", "v1");
    export_oci_archive(b1.store, b1.manifest, dir / "a.tar", "v1"); // over an existing file
    EXPECT_EQ(slurp(dir / "a.tar"), slurp(dir / "b.tar"));

    auto items = read_tar(dir / "a.tar");
    std::vector<std::string> blobs = {b1.layer_hex, b1.config_hex, *b1.manifest.sha256_hex()};
    std::sort(blobs.begin(), blobs.end());
    std::vector<std::string> want = {"blobs/", "blobs/sha256/"};
    for (const auto& h : blobs)
        want.push_back("blobs/sha256/" + h);
    want.push_back("index.json");
    want.push_back("oci-layout");
    EXPECT_EQ(names(items), want);
    for (const auto& i : items) {
        EXPECT_EQ(i.mtime, 0) << i.name;
        EXPECT_EQ(i.uid, 0) << i.name;
        EXPECT_EQ(i.gid, 0) << i.name;
        EXPECT_EQ(i.uname, "") << i.name;
        EXPECT_EQ(i.perm, i.type == AE_IFDIR ? 0755u : 0644u) << i.name;
    }
    EXPECT_EQ(item(items, "oci-layout").content, R"({"imageLayoutVersion":"1.0.0"})");
    EXPECT_EQ(
        item(items, "index.json").content,
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
        R"("manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
            b1.manifest.digest + R"(","size":)" + std::to_string(b1.manifest.size) +
            R"(,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]})");
    struct stat st {};
    ::stat((dir / "a.tar").c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
    EXPECT_EQ(st.st_size % 512, 0);
}

TEST(ExportOciArchive, FailureLeavesNothingHalfWritten) {
    factory::testing::TestDir dir;
    auto b = build_store(dir / "store");
    // Unwritable destination: its parent is a file.
    std::ofstream(dir / "file") << "x";
    try {
        export_oci_archive(b.store, b.manifest, dir / "file/out.tar", "v1");
        FAIL();
    } catch (const Error& e) {
        EXPECT_TRUE(std::string(e.what()).starts_with(
            "cannot export to oci-archive:" + (dir / "file/out.tar").string() + ": cannot create "))
            << e.what();
        EXPECT_NE(std::string(e.what()).find("Not a directory"), std::string::npos) << e.what();
    }
    // A missing blob: the previous file is untouched and no temp file remains.
    std::ofstream(dir / "out.tar") << "previous";
    fs::remove(b.store.blobs().path(b.layer_hex));
    try {
        export_oci_archive(b.store, b.manifest, dir / "out.tar", "v1");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "blob sha256:" + b.layer_hex + " of image " +
                                             b.manifest.digest + " is missing from the store " +
                                             (dir / "store").string());
    }
    EXPECT_EQ(slurp(dir / "out.tar"), "previous");
    for (auto& e : fs::directory_iterator(dir.path()))
        EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
}

TEST(ExportOciDir, WritesALayoutAndAddsTags) {
    factory::testing::TestDir dir;
    auto b = build_store(dir / "store");
    export_oci_dir(b.store, b.manifest, dir / "out", "v1");
    auto out = Layout::open(dir / "out");
    EXPECT_EQ(out.resolve("v1")->digest, b.manifest.digest);
    EXPECT_EQ(slurp(dir / "out/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
    struct stat a {
    }, s{};
    ::stat(b.store.blobs().path(b.layer_hex).c_str(), &s);
    ::stat(out.blobs().path(b.layer_hex).c_str(), &a);
    EXPECT_EQ(a.st_ino, s.st_ino) << "same file system: hard-linked";
    auto blobs = b.store.closure(b.manifest);
    ASSERT_TRUE(blobs) << blobs.error();
    for (const auto& d : *blobs)
        EXPECT_TRUE(out.blobs().verify(*d.sha256_hex())) << d.digest;

    export_oci_dir(b.store, b.manifest, dir / "out", "v2");
    auto refs = Layout::open(dir / "out").refs();
    ASSERT_EQ(refs.size(), 2u);
    EXPECT_EQ(refs[0].first, "v1");
    EXPECT_EQ(refs[1].first, "v2");

    fs::create_directories(dir / "busy");
    std::ofstream(dir / "busy/notes.txt") << "mine";
    try {
        export_oci_dir(b.store, b.manifest, dir / "busy", "v1");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "cannot export to oci:" + (dir / "busy").string() +
                                             ": the directory exists, is not empty and is not an "
                                             "OCI image layout");
    }
    EXPECT_EQ(slurp(dir / "busy/notes.txt"), "mine");
}

TEST(ExportDockerArchive, WritesWhatDockerSaveWrites) {
    factory::testing::TestDir dir;
    auto b = build_store(dir / "store");
    export_docker_archive(b.store, b.manifest, dir / "d.tar", "hello:latest");
    auto items = read_tar(dir / "d.tar");
    auto mhex = *b.manifest.sha256_hex();
    std::vector<std::string> blobs = {b.layer_hex, b.config_hex, mhex};
    std::sort(blobs.begin(), blobs.end());
    std::vector<std::string> want = {"blobs/", "blobs/sha256/"};
    for (const auto& h : blobs)
        want.push_back("blobs/sha256/" + h);
    for (auto n : {"index.json", "manifest.json", "oci-layout", "repositories"})
        want.push_back(n);
    EXPECT_EQ(names(items), want);
    EXPECT_EQ(item(items, "manifest.json").content,
              R"([{"Config":"blobs/sha256/)" + b.config_hex +
                  R"(","RepoTags":["hello:latest"],"Layers":["blobs/sha256/)" + b.layer_hex +
                  "\"]}]\n");
    EXPECT_EQ(item(items, "repositories").content,
              R"({"hello":{"latest":")" + b.layer_hex + "\"}}\n");
    EXPECT_EQ(item(items, "oci-layout").content, R"({"imageLayoutVersion": "1.0.0"})");
    EXPECT_EQ(
        item(items, "index.json").content,
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
        R"("manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
            b.manifest.digest + R"(","size":)" + std::to_string(b.manifest.size) +
            R"(,"annotations":{"io.containerd.image.name":"docker.io/library/hello:latest",)"
            R"("org.opencontainers.image.ref.name":"latest"}}]})");
    for (const auto& i : items)
        EXPECT_EQ(i.mtime, 0) << i.name;

    // It is an OCI archive too: our own reader takes it, by tag or by full name.
    auto other = Layout::create(dir / "other", {dir / "other/tmp"});
    auto r = import_oci_archive(dir / "d.tar", "latest", other.blobs());
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->manifest_desc.digest, b.manifest.digest);
    EXPECT_TRUE(import_oci_archive(dir / "d.tar", "docker.io/library/hello:latest", other.blobs()));

    // Deterministic.
    export_docker_archive(b.store, b.manifest, dir / "d2.tar", "hello:latest");
    EXPECT_EQ(slurp(dir / "d.tar"), slurp(dir / "d2.tar"));
}

TEST(ExportDockerArchive, NamesFollowDockerNormalization) {
    factory::testing::TestDir dir;
    auto b = build_store(dir / "store");
    export_docker_archive(b.store, b.manifest, dir / "d.tar", "localhost:5000/team/app");
    auto items = read_tar(dir / "d.tar");
    EXPECT_NE(item(items, "manifest.json")
                  .content.find(R"("RepoTags":["localhost:5000/team/app:latest"])"),
              std::string::npos);
    EXPECT_EQ(item(items, "repositories").content,
              R"({"localhost:5000/team/app":{"latest":")" + b.layer_hex + "\"}}\n");
    EXPECT_NE(item(items, "index.json")
                  .content.find(R"("io.containerd.image.name":"localhost:5000/team/app:latest")"),
              std::string::npos);
    try {
        export_docker_archive(b.store, b.manifest, dir / "x.tar", "Bad/Name");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::usage);
        EXPECT_EQ(std::string(e.what()), "docker-archive:" + (dir / "x.tar").string() +
                                             ": invalid image reference \"Bad/Name\": repository "
                                             "names must be lower case");
    }
    EXPECT_FALSE(fs::exists(dir / "x.tar"));
}

TEST(ExportTarget, ParsesSkopeoStyleNames) {
    auto t = parse_target("oci:out/dir:v1");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->format, Format::oci_dir);
    EXPECT_EQ(t->path, "out/dir");
    EXPECT_EQ(t->ref, "v1");
    t = parse_target("docker-archive:/x/y.tar:localhost:5000/app:1");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->format, Format::docker_archive);
    EXPECT_EQ(t->path, "/x/y.tar");
    EXPECT_EQ(t->ref, "localhost:5000/app:1");
    t = parse_target("oci-archive:img.tar");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->ref, "");
    EXPECT_EQ(to_string(*t), "oci-archive:img.tar");
    EXPECT_EQ(
        parse_target("tarball:x").error(),
        "invalid output \"tarball:x\": unknown transport \"tarball\"; expected oci:DIR[:TAG], "
        "oci-archive:FILE[:TAG], docker-archive:FILE[:NAME[:TAG]], rootfs:DIR, "
        "rootfs-tar:FILE, ext4:FILE, raw:FILE or docker://HOST/REPO[:TAG]");
    EXPECT_EQ(parse_target("oci:").error(),
              "invalid output \"oci:\": no path; expected oci:DIR[:TAG], oci-archive:FILE[:TAG], "
              "docker-archive:FILE[:NAME[:TAG]], rootfs:DIR, rootfs-tar:FILE, ext4:FILE, "
              "raw:FILE or docker://HOST/REPO[:TAG]");
    t = parse_target("rootfs:/srv/ami/root:with:colons");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->format, Format::rootfs_dir);
    EXPECT_EQ(t->path, "/srv/ami/root:with:colons");
    EXPECT_EQ(to_string(*t), "rootfs:/srv/ami/root:with:colons");
    EXPECT_EQ(parse_target("oci:d:a:b").error(),
              "invalid output \"oci:d:a:b\": a TAG can't contain ':'");
}

TEST(ExportTarget, DefaultsComeFromTheImageName) {
    factory::testing::TestDir dir;
    auto b = build_store(dir / "store");
    export_image(b.store, b.manifest, *parse_target("oci:" + (dir / "o").string()), "hello:3.1");
    EXPECT_EQ(Layout::open(dir / "o").refs().at(0).first, "3.1");
    export_image(b.store, b.manifest, *parse_target("docker-archive:" + (dir / "d.tar").string()),
                 "team/hello:3.1");
    EXPECT_NE(item(read_tar(dir / "d.tar"), "manifest.json").content.find(R"("team/hello:3.1")"),
              std::string::npos);
}

// ext4: reads each layer once: the flattened tree and its file list from the same pass, the
// list equal to read_image_files' but for content digests.
TEST(ImageFiles, FlattenGivesTheSameFilesInOnePass) {
    factory::testing::TestDir dir;
    auto built = build_store(dir / "store");
    auto full = exporter::read_image_files(built.store, built.manifest);
    fs::create_directories(dir / "root");
    auto flat = exporter::flatten_image_files(built.store, built.manifest, dir / "root");
    EXPECT_EQ(slurp(dir / "root/hello.txt"), "hello from factory\n");
    ASSERT_EQ(flat.files.size(), full.files.size());
    for (auto& [path, info] : full.files) {
        ASSERT_TRUE(flat.files.contains(path)) << path;
        const auto& f = flat.files.at(path);
        EXPECT_EQ(f.sha256, "") << path;
        EXPECT_EQ(f.type, info.type) << path;
        EXPECT_EQ(f.mode, info.mode) << path;
        EXPECT_EQ(f.size, info.size) << path;
        EXPECT_EQ(f.layer, info.layer) << path;
        EXPECT_EQ(f.uid, info.uid) << path;
    }
    EXPECT_EQ(full.files.at("hello.txt").sha256, Sha256::hex("hello from factory\n"));
    EXPECT_EQ(flat.layers.size(), 1u);
    EXPECT_EQ(flat.layers[0].entries, full.layers[0].entries);
    EXPECT_EQ(flat.created, full.created);
}
