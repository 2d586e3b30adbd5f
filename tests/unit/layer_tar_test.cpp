// The deterministic tar writer: exact header bytes, canonical order, PAX only where needed,
// round trips through libarchive, agreement with Python's tarfile, and refusal of bad entries
// and of source files that change under it.
#include "factory/layer/tar_writer.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

#include <algorithm>
#include <archive.h>
#include <archive_entry.h>
#include <clocale>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <memory>
#include <random>
#include <unistd.h>

namespace factory::layer {
namespace {

using Type = Entry::Type;

Entry file(std::string path, std::string data, unsigned mode = 0644) {
    Entry e;
    e.path = std::move(path);
    e.data = std::move(data);
    e.mode = mode;
    return e;
}
Entry dir(std::string path, unsigned mode = 0755) {
    Entry e;
    e.path = std::move(path);
    e.type = Type::dir;
    e.mode = mode;
    return e;
}
Entry link(Type type, std::string path, std::string target) {
    Entry e;
    e.path = std::move(path);
    e.type = type;
    e.mode = 0777;
    e.link = std::move(target);
    return e;
}

Result<std::string> try_tar(std::vector<Entry> entries, std::int64_t epoch = 0) {
    std::string out;
    auto r = write_tar(std::move(entries), epoch, [&out](std::string_view b) -> Result<void> {
        out.append(b);
        return {};
    });
    if (!r) return Unexpected(r.error());
    return out;
}

std::string tar(std::vector<Entry> entries, std::int64_t epoch = 0) {
    auto r = try_tar(std::move(entries), epoch);
    EXPECT_TRUE(r.has_value()) << r.error();
    return r.value_or("");
}

// A raw ustar field: the bytes up to the first NUL (or the whole field).
std::string field(const std::string& tar, std::size_t header, std::size_t offset,
                  std::size_t size) {
    std::string f = tar.substr(header + offset, size);
    return f.substr(0, f.find('\0'));
}

// What libarchive reads back for one entry.
struct Read {
    std::string path, symlink, hardlink, content;
    mode_t type = 0;
    unsigned perm = 0;
    std::int64_t uid = 0, gid = 0, mtime = 0, size = 0;
    std::map<std::string, std::string> xattrs;
};

struct FreeArchive {
    void operator()(archive* a) const noexcept { archive_read_free(a); }
};

std::string utf8(const char* s) {
    return s ? s : "";
}

std::vector<Read> read_back(const std::string& tar) {
    // libarchive converts PAX (UTF-8) names to the locale's charset; "C" can't hold them.
    std::setlocale(LC_CTYPE, "C.UTF-8");
    std::unique_ptr<archive, FreeArchive> a(archive_read_new());
    archive_read_support_format_tar(a.get());
    EXPECT_EQ(archive_read_open_memory(a.get(), tar.data(), tar.size()), ARCHIVE_OK);
    std::vector<Read> out;
    archive_entry* e = nullptr;
    int rc;
    while ((rc = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
        Read r;
        r.path = utf8(archive_entry_pathname_utf8(e));
        r.symlink = utf8(archive_entry_symlink_utf8(e));
        r.hardlink = utf8(archive_entry_hardlink_utf8(e));
        r.type = archive_entry_filetype(e);
        r.perm = archive_entry_perm(e);
        r.uid = archive_entry_uid(e);
        r.gid = archive_entry_gid(e);
        r.mtime = archive_entry_mtime(e);
        r.size = archive_entry_size(e);
        EXPECT_FALSE(archive_entry_atime_is_set(e)) << r.path;
        EXPECT_FALSE(archive_entry_ctime_is_set(e)) << r.path;
        const char* uname = archive_entry_uname(e);
        EXPECT_TRUE(!uname || !*uname) << r.path;
        const char* name;
        const void* value;
        size_t size;
        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
            r.xattrs[name] = std::string(static_cast<const char*>(value), size);
        char buf[65536];
        la_ssize_t n;
        while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0)
            r.content.append(buf, n);
        out.push_back(std::move(r));
    }
    EXPECT_EQ(rc, ARCHIVE_EOF) << archive_error_string(a.get());
    return out;
}

std::vector<std::string> names(const std::string& tar) {
    std::vector<std::string> out;
    for (const auto& r : read_back(tar))
        out.push_back(r.path);
    return out;
}

// Number of PAX extended headers ('x') in an archive of entries without content.
int pax_headers(const std::string& tar) {
    int count = 0;
    for (std::size_t at = 0; at + 512 <= tar.size(); at += 512)
        if (tar[at + 156] == 'x') ++count;
    return count;
}

void write_host_file(const std::filesystem::path& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
}

using factory::testing::random_bytes;

TEST(LayerTar, OneFileHeaderBytes) {
    Entry e = file("hello.txt", "hello\n");
    e.uid = 1000;
    e.gid = 1001;
    std::string t = tar({e}, 1700000000);

    ASSERT_EQ(t.size(), 512u + 512 + 1024); // header, content block, two zero blocks
    EXPECT_EQ(t.substr(0, 100), std::string("hello.txt") + std::string(91, '\0'));
    EXPECT_EQ(t.substr(100, 8), std::string("0000644\0", 8));
    EXPECT_EQ(t.substr(108, 8), std::string("0001750\0", 8));
    EXPECT_EQ(t.substr(116, 8), std::string("0001751\0", 8));
    EXPECT_EQ(t.substr(124, 12), std::string("00000000006\0", 12));
    EXPECT_EQ(t.substr(136, 12), std::string("14524770400\0", 12)); // 1700000000 in octal
    EXPECT_EQ(t[156], '0');
    EXPECT_EQ(t.substr(157, 100), std::string(100, '\0'));
    EXPECT_EQ(t.substr(257, 8), std::string("ustar\0"
                                            "00",
                                            8));
    EXPECT_EQ(t.substr(265, 64), std::string(64, '\0')); // uname, gname empty
    EXPECT_EQ(t.substr(329, 16), std::string("0000000\0"
                                             "0000000\0",
                                             16));
    EXPECT_EQ(t.substr(345, 167), std::string(167, '\0')); // prefix and padding
    // The checksum: six octal digits, NUL, space, over the header with the field blank.
    std::string header = t.substr(0, 512);
    std::fill(header.begin() + 148, header.begin() + 156, ' ');
    unsigned sum = 0;
    for (unsigned char c : header)
        sum += c;
    char expected[9];
    std::snprintf(expected, sizeof expected, "%06o%c ", sum, '\0');
    EXPECT_EQ(t.substr(148, 8), std::string(expected, 8));
    EXPECT_EQ(t.substr(512, 512), "hello\n" + std::string(506, '\0'));
    EXPECT_EQ(t.substr(1024), std::string(1024, '\0'));
    // Pinned: any change to these bytes changes every layer digest factory has produced.
    // GNU tar 1.34 gives the same: tar --format=ustar --numeric-owner --owner=1000
    // --group=1001 --mtime=@1700000000 -cf - hello.txt | head -c 2048 | sha256sum
    EXPECT_EQ(Sha256::hex(t), "883b676691a8d30c56aab233d70efa51a1147099aba1fbce80046ed03132b4fd");
}

TEST(LayerTar, DirectoriesEndInSlashAndLinksHaveNoSize) {
    Entry d = dir("etc");
    Entry s = link(Type::symlink, "etc/localtime", "/usr/share/zoneinfo/UTC");
    Entry f = file("etc/hostname", "box\n");
    Entry h = link(Type::hardlink, "etc/hostname2", "etc/hostname");
    std::string t = tar({d, s, f, h});
    // etc/, etc/hostname (+ content), etc/hostname2, etc/localtime, end.
    ASSERT_EQ(t.size(), 512u * 5 + 1024);
    EXPECT_EQ(field(t, 0, 0, 100), "etc/");
    EXPECT_EQ(t[156], '5');
    EXPECT_EQ(field(t, 0, 100, 8), "0000755");
    EXPECT_EQ(field(t, 512, 0, 100), "etc/hostname");
    EXPECT_EQ(field(t, 512, 124, 12), "00000000004");
    EXPECT_EQ(field(t, 1536, 0, 100), "etc/hostname2");
    EXPECT_EQ(t[1536 + 156], '1');
    EXPECT_EQ(field(t, 1536, 157, 100), "etc/hostname");
    EXPECT_EQ(field(t, 1536, 124, 12), "00000000000");
    EXPECT_EQ(field(t, 2048, 0, 100), "etc/localtime");
    EXPECT_EQ(t[2048 + 156], '2');
    EXPECT_EQ(field(t, 2048, 157, 100), "/usr/share/zoneinfo/UTC");
    EXPECT_EQ(pax_headers(t), 0);
}

// GNU tar is an independent writer of the same ustar conventions (octal fields ending in NUL,
// devmajor/devminor "0000000", checksum "%06o\0 "; Python 3.11's tarfile leaves the device
// fields NUL instead). For a tree that needs no PAX header, `tar --format=ustar` must produce
// our bytes exactly, up to the padding it adds to a 10 KiB record.
TEST(LayerTar, AgreesWithGnuTar) {
    if (std::system("tar --version 2>/dev/null | grep -q 'GNU tar'") != 0)
        GTEST_SKIP() << "GNU tar not available";
    testing::TestDir dir_;
    namespace fs = std::filesystem;
    auto root = dir_ / "root";
    auto perms = [](const fs::path& p, unsigned mode) {
        fs::permissions(p, static_cast<fs::perms>(mode), fs::perm_options::replace);
    };
    fs::create_directories(root / "a/b");
    fs::create_directories(root / "a/tmp");
    const std::string deep = "x/" + std::string(60, 'l') + "/" + std::string(60, 'm');
    fs::create_directories(root / deep); // "x/lll…/mmm…/" and its file need the ustar prefix
    std::string script;
    for (int i = 0; i < 100; ++i)
        script += "#!/bin/sh\n";
    write_host_file(root / "a/b/run", script);
    fs::create_hard_link(root / "a/b/run", root / "a/b/run2");
    write_host_file(root / "a/empty", "");
    write_host_file(root / "a-b", std::string(512, 'x'));
    write_host_file(root / std::string(100, 'z'), "y");
    write_host_file(root / (deep + "/f"), "deep");
    fs::create_symlink("../a-b", root / "a/self");
    perms(root / "a", 0755);
    perms(root / "a/b", 0750);
    perms(root / "a/tmp", 01777);
    perms(root / "a/b/run", 04755);
    perms(root / "a/empty", 0600);
    perms(root / "a-b", 0644);
    perms(root / std::string(100, 'z'), 0444);
    perms(root / "x", 0755);
    perms(root / ("x/" + std::string(60, 'l')), 0711);
    perms(root / deep, 0700);
    perms(root / (deep + "/f"), 0640);
    auto gnu_path = dir_ / "gnu.tar";
    std::string command = "cd " + root.string() +
                          " && tar --format=ustar --numeric-owner --owner=0 --group=0 "
                          "--mtime=@1234567890 --sort=name -cf " +
                          gnu_path.string() + " *";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    std::string gnu = read_file(gnu_path).value();

    auto from = [&](std::string rel, unsigned mode) {
        Entry e;
        e.path = rel;
        e.mode = mode;
        e.source = (root / rel).string();
        e.size = fs::file_size(root / rel);
        return e;
    };
    Entry run2 = link(Type::hardlink, "a/b/run2", "a/b/run");
    run2.mode = 04755;
    std::string ours =
        tar({dir("a"), dir("a/b", 0750), from("a/b/run", 04755), run2, from("a/empty", 0600),
             link(Type::symlink, "a/self", "../a-b"), dir("a/tmp", 01777), from("a-b", 0644),
             dir("x"), dir("x/" + std::string(60, 'l'), 0711), dir(deep, 0700),
             from(deep + "/f", 0640), from(std::string(100, 'z'), 0444)},
            1234567890);

    ASSERT_GE(gnu.size(), ours.size());
    EXPECT_EQ(Sha256::hex(gnu.substr(0, ours.size())), Sha256::hex(ours));
    EXPECT_EQ(gnu.substr(ours.size()), std::string(gnu.size() - ours.size(), '\0'));
}

TEST(LayerTar, CanonicalOrderWhateverTheInputOrder) {
    std::vector<Entry> entries = {
        dir("a"),           dir("a/b"), file("a/b/c", "1"),      file("a-b", "2"),
        file("a.txt", "3"), dir("b"),   file("b/\xc3\xa9", "4"), file("B", "5"),
        file("a/a", "6")};
    std::string first = tar(entries);
    EXPECT_EQ(names(first), (std::vector<std::string>{"B", "a/", "a/a", "a/b/", "a/b/c", "a-b",
                                                      "a.txt", "b/", "b/\xc3\xa9"}));
    std::mt19937 rng(42);
    for (int i = 0; i < 20; ++i) {
        std::shuffle(entries.begin(), entries.end(), rng);
        EXPECT_EQ(tar(entries), first) << "shuffle " << i;
    }
}

// path_less compares bytes with '/' first; it must agree with comparing component by
// component, on paths whose components share prefixes and hold bytes on both sides of '/'.
TEST(LayerTar, PathLessIsComponentOrder) {
    auto by_components = [](std::string_view a, std::string_view b) {
        auto split = [](std::string_view p) {
            std::vector<std::string_view> out;
            for (std::size_t start = 0;;) {
                auto slash = p.find('/', start);
                out.push_back(p.substr(start, slash - start));
                if (slash == std::string_view::npos) return out;
                start = slash + 1;
            }
        };
        return split(a) < split(b);
    };
    const std::vector<std::string> parts = {"a", "ab", "a-b", "a.b", "a0", "A", "\xc3\xa9", "a b"};
    std::vector<std::string> paths;
    for (const auto& x : parts) {
        paths.push_back(x);
        for (const auto& y : parts) {
            paths.push_back(x + "/" + y);
            for (const auto& z : {"a", "a.b", "b"})
                paths.push_back(x + "/" + y + "/" + z);
        }
    }
    for (const auto& a : paths)
        for (const auto& b : paths)
            ASSERT_EQ(path_less(a, b), by_components(a, b)) << a << " vs " << b;
    EXPECT_TRUE(path_less("", "a"));
    EXPECT_FALSE(path_less("a", ""));
}

TEST(LayerTar, DuplicatePathIsAnError) {
    auto r = try_tar({file("etc/passwd", "a"), dir("etc"), file("etc/passwd", "b")});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "duplicate path in layer: etc/passwd");
    // A directory and a file of the same name collide as well.
    EXPECT_FALSE(try_tar({file("x", ""), dir("x")}));
}

TEST(LayerTar, BadEntriesAreRejected) {
    struct Case {
        Entry entry;
        std::string error;
    };
    Entry with_type_bits = file("f", "");
    with_type_bits.mode = 0100644;
    Entry dir_with_data = dir("d");
    dir_with_data.data = "x";
    Entry size_mismatch = file("f", "abc");
    size_mismatch.size = 5;
    Entry bad_xattr = file("f", "");
    bad_xattr.xattrs = {{"user.a=b", "v"}};
    Entry dup_xattr = file("f", "");
    dup_xattr.xattrs = {{"user.a", "1"}, {"user.a", "2"}};
    std::vector<Case> cases = {
        {file("", ""), "invalid path \"\": empty"},
        {file("/etc/passwd", ""), "invalid path \"/etc/passwd\": absolute"},
        {file("./etc", ""), "invalid path \"./etc\": '.' or '..' component"},
        {file("etc/", ""), "invalid path \"etc/\": trailing '/'"},
        {file("a//b", ""), "invalid path \"a//b\": empty component"},
        {file("a/../../b", ""), "invalid path \"a/../../b\": '.' or '..' component"},
        {file(std::string("a\0b", 3), ""), "contains a NUL byte"},
        {with_type_bits, "has bits outside 07777"},
        {dir_with_data, "directory d has content"},
        {size_mismatch, "size 5 differs from its in-memory data (3 bytes)"},
        {link(Type::symlink, "s", ""), "symlink s has no target"},
        {link(Type::hardlink, "h", "/etc/passwd"), "hardlink h: bad target"},
        {link(Type::hardlink, "h", "h"), "hardlink h points to itself"},
        {bad_xattr, "invalid xattr name \"user.a=b\" on f"},
        {dup_xattr, "duplicate xattr user.a on f"},
    };
    for (const auto& c : cases) {
        auto r = try_tar({c.entry});
        ASSERT_FALSE(r) << c.error;
        EXPECT_NE(r.error().find(c.error), std::string::npos) << r.error();
    }
}

TEST(LayerTar, HardlinkTargets) {
    auto to_dir = try_tar({dir("d"), link(Type::hardlink, "h", "d")});
    ASSERT_FALSE(to_dir);
    EXPECT_EQ(to_dir.error(), "hardlink h points to directory d");
    auto later = try_tar({file("z", "1"), link(Type::hardlink, "a", "z")});
    ASSERT_FALSE(later);
    EXPECT_NE(later.error().find("sorts after it"), std::string::npos) << later.error();
    // A target in a lower layer is fine.
    EXPECT_TRUE(try_tar({link(Type::hardlink, "usr/bin/vi", "usr/bin/vim")}));
}

TEST(LayerTar, RoundTripThroughLibarchive) {
    testing::TestDir dir_;
    const std::string big = random_bytes(3 << 20, 7); // spans several 1 MiB buffer flushes
    write_host_file(dir_ / "big", big);
    const std::string long_dir = std::string(120, 'd');                   // ustar prefix
    const std::string very_long = long_dir + "/" + std::string(180, 'f'); // needs PAX
    const std::string unicode = "d/\xc3\xbcn\xc3\xaf"
                                "c\xc3\xb6"
                                "d\xc3\xa9-\xe6\x96\x87\xe4\xbb\xb6";

    Entry source = file("d/big", "", 0640);
    source.data.clear();
    source.source = (dir_ / "big").string();
    source.size = big.size();
    Entry setuid = file("d/su", "#!", 04755);
    Entry sticky = dir("d/tmp", 01777);
    Entry big_ids = file("d/ids", "i");
    big_ids.uid = 3000000;
    big_ids.gid = 4294967294u;
    Entry xattrs = file("d/caps", "c");
    xattrs.xattrs = {{"user.z", "last"},
                     {"security.capability", std::string("\x01\x00\x00\x02\0\0", 6)},
                     {"trusted.overlay.opaque", "y"},
                     {"user.a", ""}};
    std::vector<Entry> entries = {
        dir("d"),
        source,
        setuid,
        sticky,
        dir("d/empty"),
        big_ids,
        xattrs,
        dir("d/" + long_dir),
        file("d/" + long_dir + "/f", "in a long dir"),
        file("d/" + very_long, "long"),
        file(unicode, "unicode"),
        link(Type::symlink, "d/sym", "../" + std::string(150, 's') + "/\xc3\xa9"),
        link(Type::hardlink, "d/z-link", "d/big"),
        link(Type::hardlink, "d/z-link2", "d/" + very_long),
    };
    const std::int64_t epoch = 1234567890;
    auto read = read_back(tar(entries, epoch));
    ASSERT_EQ(read.size(), entries.size());
    std::map<std::string, Read> by_path;
    for (auto& r : read) {
        EXPECT_EQ(r.mtime, epoch) << r.path;
        by_path[r.path] = r;
    }
    EXPECT_EQ(by_path["d/big"].content, big);
    EXPECT_EQ(by_path["d/big"].perm, 0640u);
    EXPECT_EQ(by_path["d/su"].perm, 04755u);
    EXPECT_EQ(by_path["d/tmp/"].perm, 01777u);
    EXPECT_EQ(by_path["d/tmp/"].type, AE_IFDIR);
    EXPECT_EQ(by_path["d/empty/"].type, AE_IFDIR);
    EXPECT_EQ(by_path["d/ids"].uid, 3000000);
    EXPECT_EQ(by_path["d/ids"].gid, 4294967294);
    EXPECT_EQ(by_path["d/caps"].xattrs,
              (std::map<std::string, std::string>{
                  {"security.capability", std::string("\x01\x00\x00\x02\0\0", 6)},
                  {"user.a", ""},
                  {"user.z", "last"}}));
    EXPECT_EQ(by_path["d/" + long_dir + "/"].type, AE_IFDIR);
    EXPECT_EQ(by_path["d/" + long_dir + "/f"].content, "in a long dir");
    EXPECT_EQ(by_path["d/" + very_long].content, "long");
    EXPECT_EQ(by_path[unicode].content, "unicode");
    EXPECT_EQ(by_path["d/sym"].type, AE_IFLNK);
    EXPECT_EQ(by_path["d/sym"].symlink, "../" + std::string(150, 's') + "/\xc3\xa9");
    EXPECT_EQ(by_path["d/z-link"].hardlink, "d/big");
    EXPECT_EQ(by_path["d/z-link2"].hardlink, "d/" + very_long);
}

// Around the ustar limits: name 100 bytes, prefix 155 bytes split at a '/'.
TEST(LayerTar, NameLengthBoundaries) {
    struct Case {
        std::string path;
        Type type;
        int pax; // extended headers expected
    };
    std::string p155 = std::string(77, 'p') + "/" + std::string(77, 'q');
    std::vector<Case> cases = {
        {std::string(100, 'a'), Type::file, 0},
        {std::string(101, 'a'), Type::file, 1},        // no '/' to split at
        {std::string(99, 'a'), Type::dir, 0},          // "aaa…/" is 100
        {std::string(100, 'a'), Type::dir, 1},         // 101 with the '/', can't split
        {"x/" + std::string(100, 'b'), Type::file, 0}, // prefix "x"
        {"x/" + std::string(101, 'b'), Type::file, 1}, // the name part is too long
        {p155 + "/" + std::string(100, 'n'), Type::file, 0},
        {p155 + "x/" + std::string(100, 'n'), Type::file, 1}, // prefix 156
        {p155 + "/" + std::string(99, 'n'), Type::dir, 0},
        {"\xc3\xa9", Type::file, 1}, // not ASCII
    };
    for (const auto& c : cases) {
        Entry e = c.type == Type::dir ? dir(c.path) : file(c.path, "");
        std::string t = tar({e});
        EXPECT_EQ(pax_headers(t), c.pax) << c.path.size();
        auto n = names(t);
        ASSERT_EQ(n.size(), 1u);
        EXPECT_EQ(n[0], c.type == Type::dir ? c.path + "/" : c.path) << c.path.size();
    }
}

TEST(LayerTar, PaxRecordsAreSortedAndOnlyWhereNeeded) {
    Entry e = file("f", "");
    e.uid = 2097152; // one past ustar's 7 octal digits
    e.xattrs = {{"user.b", "2"}, {"trusted.overlay.origin", "x"}, {"user.a", "1"}};
    std::string t = tar({e}, -1);
    ASSERT_EQ(pax_headers(t), 1);
    EXPECT_EQ(field(t, 0, 0, 100), "PaxHeaders.0/f");
    EXPECT_EQ(field(t, 0, 100, 8), "0000000");
    EXPECT_EQ(field(t, 0, 136, 12), "00000000000");
    std::string records = "25 SCHILY.xattr.user.a=1\n25 SCHILY.xattr.user.b=2\n"
                          "12 mtime=-1\n15 uid=2097152\n";
    EXPECT_EQ(field(t, 0, 124, 12), "00000000115"); // 77 bytes of records
    EXPECT_EQ(t.substr(512, records.size()), records);
    // The entry's own header: uid and mtime are 0 there, the records hold them.
    EXPECT_EQ(field(t, 1024, 0, 100), "f");
    EXPECT_EQ(field(t, 1024, 108, 8), "0000000");
    EXPECT_EQ(field(t, 1024, 136, 12), "00000000000");
    auto read = read_back(t);
    ASSERT_EQ(read.size(), 1u);
    EXPECT_EQ(read[0].uid, 2097152);
    EXPECT_EQ(read[0].mtime, -1);
    EXPECT_EQ(read[0].xattrs.size(), 2u);
}

TEST(LayerTar, OverlayXattrsAloneNeedNoPax) {
    Entry e = dir("d");
    e.xattrs = {{"trusted.overlay.opaque", "y"}};
    std::string t = tar({e});
    EXPECT_EQ(pax_headers(t), 0);
    EXPECT_EQ(t, tar({dir("d")}));
}

TEST(LayerTar, PaxRecordLengthCountsItsOwnDigits) {
    // 19 + 76 + 3 = 98 bytes without the length, 100 with "98 ", but "100 " makes it 101.
    Entry e = file("f", "");
    e.xattrs = {{"user.k", std::string(76, 'v')}};
    std::string t = tar({e});
    EXPECT_EQ(t.substr(512, 4), "101 ");
    EXPECT_EQ(t[512 + 100], '\n');
    EXPECT_EQ(read_back(t)[0].xattrs["user.k"], std::string(76, 'v'));
}

TEST(LayerTar, HugeFileSizeGoesToPax) {
    testing::TestDir dir_;
    auto path = dir_ / "sparse";
    const std::uint64_t size = (std::uint64_t{8} << 30) + 1;
    {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
        ::close(fd);
    }
    Entry e;
    e.path = "huge";
    e.source = path.string();
    e.size = size;
    std::string head;
    auto r = write_tar({e}, 0, [&head](std::string_view b) -> Result<void> {
        head.append(b);
        return Unexpected("enough");
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "enough");
    ASSERT_GE(head.size(), 2048u);
    EXPECT_EQ(head.substr(512, 19), "19 size=8589934593\n");
    EXPECT_EQ(field(head, 1024, 124, 12), "00000000000");
}

Entry source_entry(const std::filesystem::path& path, std::uint64_t size) {
    Entry e;
    e.path = "f";
    e.source = path.string();
    e.size = size;
    return e;
}

TEST(LayerTar, SourceChangedSizeSinceScan) {
    testing::TestDir dir_;
    write_host_file(dir_ / "f", "12345");
    auto r = try_tar({source_entry(dir_ / "f", 4)});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), (dir_ / "f").string() +
                             " (for f) changed size since it was scanned: expected 4 bytes, "
                             "found 5");
}

// The tar buffer is flushed mid-file for files over 1 MiB; the sink then changes the file.
std::string change_while_reading(const std::filesystem::path& path, bool grow) {
    const std::size_t size = 3 << 20;
    write_host_file(path, std::string(size, 'x'));
    bool changed = false;
    std::size_t written = 0;
    auto r = write_tar({source_entry(path, size)}, 0, [&](std::string_view b) -> Result<void> {
        written += b.size();
        if (!changed) {
            std::filesystem::resize_file(path, grow ? size + 10 : size / 2);
            changed = true;
        }
        return {};
    });
    EXPECT_LT(written, 512 + size) << "the corrupt entry must not be completed";
    return r ? "" : r.error();
}

TEST(LayerTar, SourceShrinksWhileRead) {
    testing::TestDir dir_;
    std::string error = change_while_reading(dir_ / "f", false);
    EXPECT_NE(error.find("(for f) shrank while being read: expected 3145728 bytes, got"),
              std::string::npos)
        << error;
}

TEST(LayerTar, SourceGrowsWhileRead) {
    testing::TestDir dir_;
    std::string error = change_while_reading(dir_ / "f", true);
    EXPECT_NE(error.find("(for f) grew while being read beyond 3145728 bytes"), std::string::npos)
        << error;
}

TEST(LayerTar, SourceMustBeARegularFileNotASymlink) {
    testing::TestDir dir_;
    write_host_file(dir_ / "real", "abc");
    std::filesystem::create_symlink(dir_ / "real", dir_ / "sym");
    auto via_link = try_tar({source_entry(dir_ / "sym", 3)});
    ASSERT_FALSE(via_link);
    EXPECT_NE(via_link.error().find("cannot open " + (dir_ / "sym").string() + " (for f): "),
              std::string::npos)
        << via_link.error();
    std::filesystem::create_directory(dir_ / "dir");
    auto a_dir = try_tar({source_entry(dir_ / "dir", 0)});
    ASSERT_FALSE(a_dir);
    EXPECT_EQ(a_dir.error(), (dir_ / "dir").string() + " (for f) is not a regular file");
}

TEST(LayerTar, StreamsInBoundedChunks) {
    testing::TestDir dir_;
    const std::size_t size = 5 << 20;
    write_host_file(dir_ / "f", std::string(size, 'z'));
    std::size_t largest = 0, total = 0;
    ASSERT_TRUE(
        write_tar({source_entry(dir_ / "f", size)}, 0, [&](std::string_view b) -> Result<void> {
            largest = std::max(largest, b.size());
            total += b.size();
            return {};
        }));
    EXPECT_EQ(total, 512 + size + 1024);
    EXPECT_LE(largest, std::size_t{1} << 20);
}

TEST(LayerTar, OutOfOrderAddIsRefused) {
    TarWriter w([](std::string_view) -> Result<void> { return {}; }, 0);
    ASSERT_TRUE(w.add(file("b", "")));
    auto r = w.add(file("a", ""));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "entry a is out of order (after b)");
    EXPECT_FALSE(w.finish());
}

} // namespace
} // namespace factory::layer
