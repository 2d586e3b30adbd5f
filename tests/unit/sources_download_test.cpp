// sources/download and sources/archive: downloads from a python3 HTTP server on 127.0.0.1
// (tests/data/http-server.py, bounded in time) verified by sha256 and cached by it, a wrong
// digest naming both and storing nothing, no retry of a 404, credentials kept out of errors;
// archives (tar, tar.gz, tar.zst, zip) read into entries, "../" entries refused.
#include "factory/sources/archive.hpp"
#include "factory/sources/download.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::sources;

namespace {

class Server {
  public:
    explicit Server(const fs::path& root) {
        fs::path port_file = root.parent_path() / "port";
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execlp("timeout", "timeout", "120", "python3",
                     FACTORY_SOURCE_DIR "/tests/data/http-server.py", root.c_str(),
                     port_file.c_str(), "110", nullptr);
            ::_exit(127);
        }
        for (int i = 0; i < 200 && !fs::exists(port_file); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        port_ = read_file(port_file).value_or("0");
    }
    ~Server() {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + port_ + path; }

  private:
    pid_t pid_ = -1;
    std::string port_;
};

void write(const fs::path& p, const std::string& data) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << data;
}

int sh(const std::string& command) {
    return std::system(("set -e; " + command).c_str());
}

DownloadOptions quick() {
    DownloadOptions o;
    o.attempts = 2;
    o.backoff = std::chrono::milliseconds(10);
    return o;
}

std::map<std::string, layer::Entry> by_path(const std::vector<layer::Entry>& entries) {
    std::map<std::string, layer::Entry> out;
    for (const auto& e : entries)
        out[e.path] = e;
    return out;
}

} // namespace

TEST(Download, VerifiesAndCachesByDigest) {
    factory::testing::TestDir dir;
    write(dir / "www/tool.bin", "the tool\n");
    Server server(dir / "www");
    std::string hex = Sha256::hex("the tool\n");
    auto store = dir / "store";
    auto path = fetch_download(store, server.url("/tool.bin"), hex, quick());
    ASSERT_TRUE(path) << path.error();
    EXPECT_EQ(*path, store / "downloads" / hex);
    EXPECT_EQ(read_file(*path).value(), "the tool\n");
    // Cached: the server's file is gone and the download still succeeds, offline too.
    fs::remove(dir / "www/tool.bin");
    auto o = quick();
    o.offline = true;
    auto again = fetch_download(store, server.url("/tool.bin"), hex, o);
    ASSERT_TRUE(again) << again.error();
    EXPECT_EQ(*again, *path);
}

TEST(Download, AWrongDigestNamesBothAndStoresNothing) {
    factory::testing::TestDir dir;
    write(dir / "www/tool.bin", "the tool\n");
    Server server(dir / "www");
    std::string want(64, 'a');
    auto store = dir / "store";
    auto r = fetch_download(store, server.url("/tool.bin"), want, quick());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "download " + server.url("/tool.bin") +
                             ": sha256 mismatch: expected sha256:" + want +
                             ", got sha256:" + Sha256::hex("the tool\n") + " (nothing was stored)");
    ASSERT_TRUE(fs::exists(store / "downloads"));
    EXPECT_TRUE(fs::is_empty(store / "downloads"));
}

TEST(Download, HttpErrorsAndCredentials) {
    factory::testing::TestDir dir;
    fs::create_directories(dir / "www");
    Server server(dir / "www");
    std::string hex(64, 'b');
    auto r = fetch_download(dir / "store", server.url("/missing"), hex, quick());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "download " + server.url("/missing") + ": HTTP 404");
    // 5xx is retried (attempts = 2), 404 is not.
    ASSERT_FALSE(fetch_download(dir / "store", server.url("/status/503"), hex, quick()));
    std::string tries =
        fetch_download(dir / "store", server.url("/count/status/503"), Sha256::hex("2"), quick())
            ? "2"
            : "?";
    EXPECT_EQ(tries, "2");
    std::string once =
        fetch_download(dir / "store", server.url("/count/missing"), Sha256::hex("1"), quick())
            ? "1"
            : "?";
    EXPECT_EQ(once, "1");
    std::string url = server.url("/missing");
    auto secret = "http://me:s3cr3t@" + url.substr(7);
    auto s = fetch_download(dir / "store", secret, hex, quick());
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().find("s3cr3t"), std::string::npos) << s.error();
    auto bad = fetch_download(dir / "store", "file:///etc/passwd", hex, quick());
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("file:///etc/passwd"), std::string::npos) << bad.error();
    auto off = quick();
    off.offline = true;
    auto o = fetch_download(dir / "store", url, hex, off);
    ASSERT_FALSE(o);
    EXPECT_EQ(o.error(), "offline: download " + url + " (sha256:" + hex + ") is not in the store");
}

TEST(Archive, ReadsTarGzZstAndZip) {
    factory::testing::TestDir dir;
    write(dir / "src/pkg/bin/tool", "#!/bin/sh\n");
    write(dir / "src/pkg/README", "read me\n");
    fs::create_symlink("bin/tool", dir / "src/pkg/link");
    ASSERT_EQ(sh("chmod 755 " + (dir / "src/pkg/bin/tool").string() + " && cd " +
                 (dir / "src").string() +
                 " && tar -cf ../a.tar pkg && gzip -k ../a.tar && zstd -q ../a.tar -o ../a.tar.zst"
                 " && python3 -c 'import zipfile; z=zipfile.ZipFile(\"../a.zip\",\"w\");"
                 " z.write(\"pkg/README\"); z.write(\"pkg/bin/tool\"); z.close()'"),
              0);
    for (const char* name : {"a.tar", "a.tar.gz", "a.tar.zst", "a.zip"}) {
        auto content = dir / (std::string("c-") + name);
        fs::create_directories(content);
        auto r = archive_entries(dir / name, "/opt/x", content);
        ASSERT_TRUE(r) << name << ": " << r.error();
        auto e = by_path(*r);
        ASSERT_TRUE(e.contains("opt/x/pkg/README")) << name;
        EXPECT_EQ(read_file(e["opt/x/pkg/README"].source).value(), "read me\n");
        EXPECT_EQ(e["opt/x/pkg/bin/tool"].mode, 0755u) << name;
        EXPECT_EQ(e["opt/x/pkg/README"].mode, 0644u) << name;
        EXPECT_EQ(e["opt/x"].type, layer::Entry::Type::dir);
        EXPECT_EQ(e["opt"].type, layer::Entry::Type::dir);
        if (std::string(name) != "a.zip") {
            EXPECT_EQ(e["opt/x/pkg/link"].type, layer::Entry::Type::symlink) << name;
            EXPECT_EQ(e["opt/x/pkg/link"].link, "bin/tool");
        }
    }
}

TEST(Archive, DotDotEntriesAreRefused) {
    factory::testing::TestDir dir;
    ASSERT_EQ(
        sh("cd " + dir.path().string() +
           " && python3 -c 'import tarfile, io; t=tarfile.open(\"evil.tar.gz\",\"w:gz\");"
           " i=tarfile.TarInfo(\"ok\"); i.size=2; t.addfile(i, io.BytesIO(b\"ok\"));"
           " i=tarfile.TarInfo(\"../../escaped\"); i.size=4; t.addfile(i, io.BytesIO(b\"evil\"));"
           " t.close()'"),
        0);
    fs::create_directories(dir / "content");
    auto r = archive_entries(dir / "evil.tar.gz", "opt", dir / "content");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("entry \"../../escaped\""), std::string::npos) << r.error();
    EXPECT_FALSE(fs::exists(dir.path().parent_path() / "escaped"));
    EXPECT_FALSE(fs::exists(dir / "escaped"));
}

// An entry under a symlink of the archive would land where the link points: refused, and
// said so (not "both a file and a directory"); errors name the archive as the caller asks.
TEST(Archive, AnEntryThroughASymlinkIsRefused) {
    factory::testing::TestDir dir;
    ASSERT_EQ(
        sh("cd " + dir.path().string() +
           " && python3 -c 'import tarfile, io; t=tarfile.open(\"link.tar\",\"w\");"
           " i=tarfile.TarInfo(\"lnk\"); i.type=tarfile.SYMTYPE; i.linkname=\"/etc\"; t.addfile(i);"
           " i=tarfile.TarInfo(\"lnk/passwd\"); i.size=4; t.addfile(i, io.BytesIO(b\"evil\"));"
           " t.close()'"),
        0);
    fs::create_directories(dir / "content");
    auto r = archive_entries(dir / "link.tar", "opt/x", dir / "content", {},
                             "https://example.com/link.tar");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), "https://example.com/link.tar: entry \"opt/x/lnk/passwd\" goes through "
                         "the symlink \"opt/x/lnk\" (→ /etc), and extracting follows no symlink");
    write(dir / "plain", "not an archive\n");
    auto p = archive_entries(dir / "plain", "opt", dir / "content", {}, "https://example.com/p");
    ASSERT_FALSE(p);
    EXPECT_TRUE(p.error().starts_with("https://example.com/p: ")) << p.error();
}

// A tar is read by the one layer reader: a bomb is refused with its words, and an entry whose
// size the cap can't hold is refused before a byte of it is written.
TEST(Archive, ABombIsRefusedByTheLayerReadersCaps) {
    factory::testing::TestDir dir;
    ASSERT_EQ(
        sh("cd " + dir.path().string() +
           " && head -c 8388608 /dev/zero > zeros && tar -cf bomb.tar zeros && gzip -9 bomb.tar"),
        0);
    fs::create_directories(dir / "content");
    ArchiveLimits limits;
    limits.stream.ratio_after = 1 << 20;
    limits.stream.max_ratio = 100;
    auto r = archive_entries(dir / "bomb.tar.gz", "opt", dir / "content", limits);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("compression ratio over 100"), std::string::npos) << r.error();

    ArchiveLimits small;
    small.stream.max_bytes = 1 << 20;
    auto s = archive_entries(dir / "bomb.tar.gz", "opt", dir / "content", small);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error(),
              "bomb.tar.gz: entry \"zeros\": size 8388608 is over the cap of 1048576 bytes");
}
