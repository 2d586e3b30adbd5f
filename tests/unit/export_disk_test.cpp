// The disk exports' pure parts: DEST and option parsing, derived ids, the dpkg status reader,
// the manifest JSON, and the diff of two flattened trees.
#include <gtest/gtest.h>

#include "factory/export/disk_ids.hpp"
#include "factory/export/disk_manifest.hpp"
#include "factory/export/ext4.hpp"
#include "factory/export/image_diff.hpp"
#include "factory/export/target.hpp"

using namespace factory;
using namespace factory::exporter;

TEST(ExportTarget, DiskKindsTakeTheWholeRestAsPath) {
    auto t = parse_target("ext4:out/root:fs.img");
    ASSERT_TRUE(t) << t.error();
    EXPECT_EQ(t->format, Format::ext4);
    EXPECT_EQ(t->path, "out/root:fs.img");
    EXPECT_EQ(to_string(*t), "ext4:out/root:fs.img");
    auto r = parse_target("raw:disk.img");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->format, Format::raw);
    auto bad = parse_target("ext5:x");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("unknown transport \"ext5\""), std::string::npos) << bad.error();
    EXPECT_NE(bad.error().find("ext4:FILE, raw:FILE or docker://HOST/REPO[:TAG]"),
              std::string::npos)
        << bad.error();
    EXPECT_FALSE(parse_target("ext4:"));
}

TEST(ExportTarget, Sizes) {
    EXPECT_EQ(parse_size("512M").value(), 512ull << 20);
    EXPECT_EQ(parse_size("2g").value(), 2ull << 30);
    EXPECT_EQ(parse_size("4096").value(), 4096u);
    EXPECT_EQ(parse_size("1T").value(), 1ull << 40);
    for (const char* bad :
         {"", "M", "0", "12Q", "1.5G", "-1G", "99999999999999999999", "1GB", "20000000T"})
        EXPECT_FALSE(parse_size(bad)) << bad;
    EXPECT_NE(parse_size("12Q").error().find("invalid size \"12Q\""), std::string::npos);
}

TEST(ExportTarget, Labels) {
    EXPECT_TRUE(check_label(""));
    EXPECT_TRUE(check_label("cloudimg-rootfs"));
    EXPECT_FALSE(check_label("12345678901234567"));
    EXPECT_FALSE(check_label("a/b"));
    EXPECT_FALSE(check_label("a\nb"));
}

TEST(DiskIds, DerivedFromTheDigestAndPurpose) {
    std::string d1 = "sha256:" + std::string(64, 'a'), d2 = "sha256:" + std::string(64, 'b');
    auto u = derived_uuid(d1, "ext4 uuid");
    EXPECT_EQ(u, derived_uuid(d1, "ext4 uuid"));
    EXPECT_NE(u, derived_uuid(d2, "ext4 uuid"));
    EXPECT_NE(u, derived_uuid(d1, "ext4 hash_seed"));
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[14], '5') << u;
    EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos) << u;
    EXPECT_NE(derived_u32(d1, "esp"), derived_u32(d2, "esp"));
}

TEST(DiskManifest, DpkgStatusListsInstalledPackagesSorted) {
    auto p =
        parse_dpkg_status("Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n"
                          "Version: 1:1.2.13\nDescription: x\n continued: line\n\n"
                          "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n"
                          "Package: base-files\nStatus: install ok installed\n"
                          "Version: 12.4\nArchitecture: amd64");
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].name, "base-files");
    EXPECT_EQ(p[0].version, "12.4");
    EXPECT_EQ(p[1].name, "zlib1g");
    EXPECT_EQ(p[1].version, "1:1.2.13");
    EXPECT_EQ(p[1].architecture, "amd64");
}

TEST(DiskManifest, JsonFields) {
    DiskManifest m;
    m.image = "sha256:x";
    m.format = "raw";
    m.file = "disk.img";
    m.partitions.push_back({"root", "T", "U", "F", 1048576, 2048, "ext4"});
    auto j = to_json(m);
    EXPECT_NE(j.find("\"format\": \"raw\""), std::string::npos) << j;
    EXPECT_NE(j.find("\"start\": 1048576"), std::string::npos) << j;
    EXPECT_NE(j.find("\"packages\": null"), std::string::npos) << j;
    m.packages = std::vector<Package>{{"bash", "5.2", "amd64"}};
    EXPECT_NE(to_json(m).find("\"name\": \"bash\""), std::string::npos);
}

namespace {
FileInfo file(std::string sha, std::uint32_t mode = 0644, std::size_t layer = 0) {
    FileInfo f;
    f.sha256 = std::move(sha);
    f.mode = mode;
    f.size = 4;
    f.layer = layer;
    return f;
}
} // namespace

TEST(ImageDiff, AddedRemovedChangedWithLayers) {
    ImageFiles a, b;
    a.digest = "A";
    b.digest = "B";
    a.layers = {{"l0", "", 1, 1}, {"l1", "", 1, 1}};
    b.layers = {{"l0", "", 1, 1}, {"l1b", "", 1, 1}, {"l2", "", 1, 1}};
    a.files["same"] = file("s");
    b.files["same"] = file("s");
    a.files["content"] = file("old", 0644, 1);
    b.files["content"] = file("new", 0644, 1);
    a.files["chmod"] = file("c");
    b.files["chmod"] = file("c", 0755, 2);
    a.files["whiteout"] = file("w");
    b.removed["whiteout"] = 2;
    a.files["dropped"] = file("d", 0644, 1); // no longer written by B's layer 1
    b.files["added"] = file("n", 0644, 2);
    FileInfo moved = file("s");
    moved.mtime = 99; // times are not compared
    a.files["time"] = file("s");
    b.files["time"] = moved;
    auto d = diff_images(a, b);
    ASSERT_EQ(d.changes.size(), 5u);
    auto find = [&](const std::string& p) -> const FileChange& {
        for (const auto& c : d.changes)
            if (c.path == p) return c;
        ADD_FAILURE() << "no change for " << p;
        return d.changes.front();
    };
    EXPECT_EQ(find("added").kind, ChangeKind::added);
    EXPECT_EQ(find("added").layer, 2u);
    EXPECT_EQ(find("content").what, std::vector<std::string>{"content"});
    EXPECT_EQ(find("content").layer, 1u);
    EXPECT_EQ(find("chmod").what, std::vector<std::string>{"mode"});
    EXPECT_EQ(find("chmod").layer, 2u);
    EXPECT_EQ(find("whiteout").kind, ChangeKind::removed);
    EXPECT_EQ(find("whiteout").layer, 2u);
    EXPECT_EQ(find("dropped").layer, 1u);
    ASSERT_EQ(d.layers.size(), 3u);
    EXPECT_TRUE(d.layers[0].shared);
    EXPECT_FALSE(d.layers[1].shared);
    EXPECT_EQ(d.layers[2].added, 1u);
    EXPECT_EQ(d.layers[2].changed, 1u);
    EXPECT_EQ(d.layers[2].removed, 1u);
}

TEST(Ext4, DefaultSizeCoversContentAndMargin) {
    ImageFiles f;
    FileInfo big;
    big.type = FileType::file;
    big.size = 100ull << 20;
    f.files["big"] = big;
    auto size = default_ext4_size(f);
    EXPECT_GE(size, (120ull << 20) + (64ull << 20));
    EXPECT_EQ(size % (1 << 20), 0u);
    EXPECT_EQ(ext4_inode_count(f), 4096u);
}
