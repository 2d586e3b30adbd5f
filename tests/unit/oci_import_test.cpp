// Importing bases from oci: layouts and oci-archive: tars, including hostile archives.
#include "factory/oci/import.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>

#include "factory/oci/layout.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

using namespace factory::oci;
namespace fs = std::filesystem;

namespace {

struct TarEntry {
    std::string name;
    std::string content;
    unsigned type = AE_IFREG;
    std::string link{}; // symlink target or hard link target
    std::int64_t size_override = -1;
};

// Writes a tar with libarchive's write side (to a file, never to disk entries).
void write_tar(const fs::path& file, const std::vector<TarEntry>& entries) {
    std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                              archive_write_free);
    archive_write_set_format_pax_restricted(a.get());
    ASSERT_EQ(archive_write_open_filename(a.get(), file.c_str()), ARCHIVE_OK);
    for (const auto& e : entries) {
        std::unique_ptr<archive_entry, decltype(&archive_entry_free)> h(archive_entry_new(),
                                                                        archive_entry_free);
        archive_entry_set_pathname(h.get(), e.name.c_str());
        archive_entry_set_filetype(h.get(), e.type);
        archive_entry_set_perm(h.get(), e.type == AE_IFDIR ? 0755 : 0644);
        if (e.type == AE_IFLNK) archive_entry_set_symlink(h.get(), e.link.c_str());
        if (e.type == AE_IFREG && !e.link.empty())
            archive_entry_set_hardlink(h.get(), e.link.c_str());
        archive_entry_set_size(h.get(), e.size_override >= 0
                                            ? e.size_override
                                            : (e.type == AE_IFREG && e.link.empty()
                                                   ? static_cast<la_int64_t>(e.content.size())
                                                   : 0));
        ASSERT_EQ(archive_write_header(a.get(), h.get()), ARCHIVE_OK) << e.name;
        if (!e.content.empty()) archive_write_data(a.get(), e.content.data(), e.content.size());
    }
    archive_write_close(a.get());
}

std::string hex(const std::string& s) {
    return factory::Sha256::hex(s);
}

// An image as loose blobs plus the index.json naming it "v1".
struct Image {
    std::string layer, config, manifest, index;
    Descriptor manifest_desc;
};

Image make_image(const std::string& layer_content = "layer bytes") {
    Image img;
    img.layer = layer_content;
    ImageConfig c(host_platform());
    c.add_layer("sha256:" + hex(img.layer), History{});
    img.config = c.serialize();
    Manifest m;
    m.config = describe(std::string(media_type::config), img.config);
    m.layers = {describe(std::string(media_type::layer_tar), img.layer)};
    img.manifest = serialize(m);
    img.manifest_desc = describe(std::string(media_type::manifest), img.manifest);
    Index index;
    auto d = img.manifest_desc;
    d.annotations[annotation::ref_name] = "v1";
    index.manifests = {d};
    img.index = serialize(index);
    return img;
}

std::vector<TarEntry> archive_entries(const Image& img) {
    return {{"blobs/", "", AE_IFDIR},
            {"blobs/sha256/", "", AE_IFDIR},
            {"blobs/sha256/" + hex(img.config), img.config},
            {"blobs/sha256/" + hex(img.layer), img.layer},
            {"blobs/sha256/" + hex(img.manifest), img.manifest},
            {"index.json", img.index},
            {"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"}};
}

struct Dest {
    factory::testing::TestDir dir;
    Layout store = Layout::create(dir / "store", {dir / "store/tmp"});
    factory::cache::BlobStore& blobs() { return store.blobs(); }
    std::size_t count() const {
        std::size_t n = 0;
        for ([[maybe_unused]] auto& e : fs::directory_iterator(dir / "store/blobs/sha256"))
            ++n;
        return n;
    }
    bool tmp_is_empty() const { return fs::is_empty(dir / "store/tmp"); }
};

std::string import_error(Dest& d, const std::vector<TarEntry>& entries, std::string_view tag = "") {
    auto file = d.dir / "in.tar";
    write_tar(file, entries);
    auto r = import_oci_archive(file, tag, d.blobs());
    if (r) return "(imported)";
    return r.error();
}

} // namespace

TEST(ImportArchive, ImportsAGoodArchive) {
    Dest d;
    auto img = make_image();
    auto file = d.dir / "in.tar";
    write_tar(file, archive_entries(img));
    auto r = import_oci_archive(file, "v1", d.blobs());
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->manifest_desc.digest, "sha256:" + hex(img.manifest));
    EXPECT_EQ(r->manifest.layers.size(), 1u);
    EXPECT_EQ(r->config.diff_ids().at(0), "sha256:" + hex(img.layer));
    for (const auto* b : {&img.layer, &img.config, &img.manifest})
        EXPECT_TRUE(d.blobs().has(hex(*b)));
    EXPECT_EQ(d.count(), 3u);
    EXPECT_TRUE(d.tmp_is_empty());
    // "" picks the only image, and a second import is a no-op that still succeeds.
    auto again = import_oci_archive(file, "", d.blobs());
    ASSERT_TRUE(again) << again.error();
    auto missing = import_oci_archive(file, "v2", d.blobs());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), "oci-archive:" + file.string() + ": no image named \"v2\"");
}

TEST(ImportArchive, AcceptsDotSlashNamesAndIgnoresDockerFiles) {
    Dest d;
    auto img = make_image();
    auto entries = archive_entries(img);
    for (auto& e : entries)
        e.name = "./" + e.name;
    entries.insert(entries.begin(), TarEntry{"./", "", AE_IFDIR});
    entries.push_back({"manifest.json", "[]"});
    entries.push_back({"repositories", "{}"});
    EXPECT_EQ(import_error(d, entries), "(imported)");
}

TEST(ImportArchive, RejectsHostileNames) {
    Dest d;
    auto img = make_image();
    auto with = [&](TarEntry extra) {
        auto e = archive_entries(img);
        e.insert(e.begin() + 2, std::move(extra));
        return e;
    };
    auto prefix = "oci-archive:" + (d.dir / "in.tar").string() + ": ";
    EXPECT_EQ(import_error(d, with({"../evil", "x"})),
              prefix +
                  "entry \"../evil\": \"..\", \".\" and empty path components are not allowed");
    EXPECT_FALSE(fs::exists(d.dir / "evil"));
    EXPECT_EQ(import_error(d, with({"blobs/sha256/../../../evil", "x"})),
              prefix + "entry \"blobs/sha256/../../../evil\": \"..\", \".\" and empty path "
                       "components are not allowed");
    EXPECT_EQ(import_error(d, with({"/etc/evil", "x"})),
              prefix + "entry \"/etc/evil\": absolute names are not allowed");
    EXPECT_EQ(import_error(d, with({"blobs/sha256/" + std::string(64, 'A'), "x"})),
              prefix + "entry \"blobs/sha256/" + std::string(64, 'A') +
                  "\": blob names must be 64 lower-case hex digits");
    EXPECT_EQ(import_error(d, with({"etc/passwd", "x"})),
              prefix + "entry \"etc/passwd\": not part of an OCI image layout");
    EXPECT_EQ(d.count(), 0u);
    EXPECT_TRUE(d.tmp_is_empty());
}

TEST(ImportArchive, RejectsLinksAndDevices) {
    Dest d;
    auto img = make_image();
    auto prefix = "oci-archive:" + (d.dir / "in.tar").string() + ": ";
    auto entries = archive_entries(img);
    // blobs/sha256 as a symlink out of the archive, then a blob "inside" it.
    entries[1] = {"blobs/sha256", "", AE_IFLNK, "/tmp"};
    EXPECT_EQ(import_error(d, entries),
              prefix + "entry \"blobs/sha256\": symlinks are not accepted");
    entries = archive_entries(img);
    entries[2] = {"blobs/sha256/" + hex(img.config), "", AE_IFLNK, "/etc/passwd"};
    EXPECT_EQ(import_error(d, entries),
              prefix + "entry \"blobs/sha256/" + hex(img.config) + "\": symlinks are not accepted");
    entries = archive_entries(img);
    entries.push_back({"oci-layout2", "", AE_IFREG, "oci-layout"});
    EXPECT_EQ(import_error(d, entries),
              prefix + "entry \"oci-layout2\": hard links are not accepted");
    entries = archive_entries(img);
    entries.push_back({"blobs/sha256/" + std::string(64, 'c'), "", AE_IFCHR});
    EXPECT_EQ(import_error(d, entries), prefix + "entry \"blobs/sha256/" + std::string(64, 'c') +
                                            "\": only files and directories are accepted");
    EXPECT_EQ(d.count(), 0u);
}

TEST(ImportArchive, RejectsABlobThatDoesNotMatchItsName) {
    Dest d;
    auto img = make_image();
    auto entries = archive_entries(img);
    entries[3].content = "evil bytes!"; // same length as "layer bytes"
    auto prefix = "oci-archive:" + (d.dir / "in.tar").string() + ": ";
    EXPECT_EQ(import_error(d, entries),
              prefix + "entry blobs/sha256/" + hex(img.layer) +
                  ": content does not match its name (got sha256:" + hex("evil bytes!") + ")");
    EXPECT_EQ(d.count(), 0u);
    EXPECT_TRUE(d.tmp_is_empty());
}

TEST(ImportArchive, RejectsDuplicatesOversizeAndMissingPieces) {
    Dest d;
    auto img = make_image();
    auto prefix = "oci-archive:" + (d.dir / "in.tar").string() + ": ";
    auto entries = archive_entries(img);
    entries.push_back({"index.json", img.index});
    EXPECT_EQ(import_error(d, entries), prefix + "duplicate entry \"index.json\"");

    entries = archive_entries(img);
    entries[5].content = std::string((4u << 20) + 1, ' ');
    EXPECT_EQ(import_error(d, entries), prefix + "index.json is over the limit of 4194304 bytes");

    entries = archive_entries(img);
    entries.erase(entries.begin() + 6);
    EXPECT_EQ(import_error(d, entries), prefix + "no oci-layout file: not an OCI archive");

    entries = archive_entries(img);
    entries.erase(entries.begin() + 3); // the layer
    EXPECT_EQ(import_error(d, entries),
              prefix + "layer 1 of 1 (sha256:" + hex(img.layer) + ") is missing");
    EXPECT_EQ(d.count(), 0u) << "nothing is committed when a layer is missing";

    entries = archive_entries(img);
    entries[6].content = R"({"imageLayoutVersion":"9.9.9"})";
    EXPECT_EQ(import_error(d, entries),
              prefix + "unsupported imageLayoutVersion \"9.9.9\" (factory reads 1.0.0)");

    std::ofstream(d.dir / "junk.tar") << "this is not a tar file at all, not even close.....";
    auto junk = import_oci_archive(d.dir / "junk.tar", "", d.blobs());
    ASSERT_FALSE(junk);
    EXPECT_NE(junk.error().find("not a readable tar archive"), std::string::npos) << junk.error();
}

TEST(ImportArchive, RejectsManifestIndexConfusionAndMediaTypeLies) {
    Dest d;
    auto img = make_image();
    // index.json says "manifest" but the blob is an index.
    Index inner;
    inner.manifests = {img.manifest_desc};
    auto inner_bytes = serialize(inner);
    Index outer;
    auto lie = describe(std::string(media_type::manifest), inner_bytes);
    lie.annotations[annotation::ref_name] = "v1";
    outer.manifests = {lie};
    auto entries = archive_entries(img);
    entries.push_back({"blobs/sha256/" + hex(inner_bytes), inner_bytes});
    entries[5].content = serialize(outer);
    EXPECT_EQ(import_error(d, entries, "v1"),
              "oci-archive:" + (d.dir / "in.tar").string() + ": sha256:" + hex(inner_bytes) +
                  ": invalid image manifest: a manifest must not have a \"manifests\" field "
                  "(manifest/index confusion, CVE-2021-41190)");
    EXPECT_EQ(d.count(), 0u);
}

TEST(ImportLayout, CopiesAndVerifiesReachableBlobs) {
    Dest d;
    auto src = Layout::create(d.dir / "src");
    auto img = make_image();
    src.put_blob("x/y", img.layer);
    src.put_blob("x/y", img.config);
    src.put_blob("x/y", img.manifest);
    src.put_blob("x/y", "unreferenced");
    src.set_ref("v1", img.manifest_desc);
    auto r = import_oci_layout(d.dir / "src", "v1", d.blobs());
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->manifest_desc.digest, img.manifest_desc.digest);
    EXPECT_EQ(d.count(), 3u) << "the unreferenced blob is not copied";
    struct stat a {
    }, b{};
    ::stat(src.blobs().path(hex(img.layer)).c_str(), &a);
    ::stat(d.blobs().path(hex(img.layer)).c_str(), &b);
    EXPECT_NE(a.st_ino, b.st_ino) << "an import copies (and verifies), never links";
}

TEST(ImportLayout, RejectsCorruptOrMissingBlobs) {
    Dest d;
    auto src = Layout::create(d.dir / "src");
    auto img = make_image();
    src.put_blob("x/y", img.config);
    src.put_blob("x/y", img.manifest);
    src.set_ref("v1", img.manifest_desc);
    auto r = import_oci_layout(d.dir / "src", "v1", d.blobs());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "oci:" + (d.dir / "src").string() +
                             ": layer 1 of 1 (sha256:" + hex(img.layer) + ") is missing");
    // The layer file exists under its name but holds other bytes.
    std::ofstream(src.blobs().path(hex(img.layer))) << "evil bytes!";
    r = import_oci_layout(d.dir / "src", "v1", d.blobs());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(),
              "oci:" + (d.dir / "src").string() + ": " + src.blobs().path(hex(img.layer)).string() +
                  ": blob sha256:" + hex(img.layer) +
                  " does not match its content: content hashes to sha256:" + hex("evil bytes!"));
    EXPECT_FALSE(d.blobs().has(hex(img.layer)));
    // A corrupt manifest.
    std::ofstream(src.blobs().path(hex(img.manifest)), std::ios::trunc) << img.manifest + " ";
    r = import_oci_layout(d.dir / "src", "v1", d.blobs());
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("size is " + std::to_string(img.manifest.size() + 1) +
                             " bytes, its descriptor says " + std::to_string(img.manifest.size())),
              std::string::npos)
        << r.error();
}
