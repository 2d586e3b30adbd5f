// The one-pass layer pipeline: digests that don't depend on entry order, thread count or
// machine; blobs that gzip(1)/zstd(1) decompress to the tar named by the diff_id; errors
// from bad entries and failing writes. Also a throughput benchmark, off by default.
#include "factory/layer/layer_writer.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <map>
#include <random>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace factory::layer {
namespace {

namespace fs = std::filesystem;

std::pair<std::string, int> run(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return {"", -1};
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    return {out, ::pclose(p)};
}

// The entries of a host directory tree, as a changeset producer would give them: hardlinked
// files become one file (the path sorting first) and hardlinks to it.
std::vector<Entry> entries_of(const fs::path& root) {
    std::vector<Entry> out;
    std::map<std::pair<dev_t, ino_t>, std::vector<std::size_t>> inodes;
    for (const auto& item : fs::recursive_directory_iterator(root)) {
        struct stat st {};
        if (::lstat(item.path().c_str(), &st) != 0) continue;
        Entry e;
        e.path = item.path().lexically_relative(root).string(); // fs::relative follows symlinks
        e.mode = st.st_mode & 07777;
        e.uid = st.st_uid;
        e.gid = st.st_gid;
        if (S_ISDIR(st.st_mode)) {
            e.type = Entry::Type::dir;
        } else if (S_ISLNK(st.st_mode)) {
            e.type = Entry::Type::symlink;
            e.link = fs::read_symlink(item.path()).string();
        } else if (S_ISREG(st.st_mode)) {
            e.source = item.path().string();
            e.size = static_cast<std::uint64_t>(st.st_size);
            if (st.st_nlink > 1) inodes[{st.st_dev, st.st_ino}].push_back(out.size());
        } else {
            continue; // devices, fifos, sockets: not in this benchmark's trees
        }
        out.push_back(std::move(e));
    }
    for (auto& [inode, indexes] : inodes) {
        auto first = *std::min_element(indexes.begin(), indexes.end(), [&](auto a, auto b) {
            return path_less(out[a].path, out[b].path);
        });
        for (auto i : indexes) {
            if (i == first) continue;
            out[i].type = Entry::Type::hardlink;
            out[i].link = out[first].path;
            out[i].source.clear();
            out[i].size = 0;
        }
    }
    return out;
}

std::string random_text(std::size_t size, std::mt19937& rng) {
    static const char* words[] = {"int ",    "main",   "(void) ", "{\n",
                                  "return ", "0;\n",   "}\n",     "#include <stdio.h>\n",
                                  "static ", "const ", "char* "};
    std::string s;
    while (s.size() < size)
        s += words[rng() % std::size(words)];
    s.resize(size);
    return s;
}

// A small tree with every kind of entry, files from empty to a few MiB.
void make_tree(const fs::path& root) {
    std::mt19937 rng(1);
    fs::create_directories(root / "usr/bin");
    fs::create_directories(root / "usr/share/doc/empty");
    fs::create_directories(root / "etc");
    for (int i = 0; i < 40; ++i)
        write_file_atomic(root / "usr/share/doc" / ("f" + std::to_string(i)),
                          random_text(rng() % 20000, rng));
    std::string binary(3 << 20, '\0');
    for (auto& c : binary)
        c = static_cast<char>(rng() % 4 == 0 ? rng() : 0);
    write_file_atomic(root / "usr/bin/tool", binary, 0755);
    write_file_atomic(root / "etc/empty", "", 0600);
    fs::create_hard_link(root / "usr/bin/tool", root / "usr/bin/tool2");
    fs::create_symlink("tool", root / "usr/bin/alias");
}

Result<LayerInfo> layer_to(const fs::path& path, std::vector<Entry> entries,
                           const LayerOptions& options) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return Unexpected("cannot create " + path.string());
    return write_layer(std::move(entries), options, fd.get());
}

LayerInfo layer(const fs::path& path, std::vector<Entry> entries, const LayerOptions& options) {
    auto r = layer_to(path, std::move(entries), options);
    EXPECT_TRUE(r) << r.error();
    return r.value_or(LayerInfo{});
}

Entry hello() {
    Entry e;
    e.path = "hello.txt";
    e.data = "hello\n";
    e.uid = 1000;
    e.gid = 1001;
    return e;
}

const char* hello_tar_digest =
    "sha256:883b676691a8d30c56aab233d70efa51a1147099aba1fbce80046ed03132b4fd";

TEST(LayerWriter, OneFileLayer) {
    testing::TestDir dir;
    LayerOptions none{.epoch = 1700000000, .compression = Compression::none};
    auto plain = layer(dir / "plain", {hello()}, none);
    EXPECT_EQ(plain.diff_id, hello_tar_digest); // the tar that GNU tar writes too
    EXPECT_EQ(plain.digest, hello_tar_digest);
    EXPECT_EQ(plain.size, 2048u);
    EXPECT_EQ(plain.media_type, "application/vnd.oci.image.layer.v1.tar");
    EXPECT_EQ(fs::file_size(dir / "plain"), 2048u);

    LayerOptions gzip = none;
    gzip.compression = Compression::gzip;
    auto gz = layer(dir / "gz", {hello()}, gzip);
    EXPECT_EQ(gz.diff_id, hello_tar_digest);
    EXPECT_EQ(gz.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    EXPECT_EQ(gz.size, fs::file_size(dir / "gz"));
    EXPECT_EQ(gz.digest, "sha256:" + sha256_file(dir / "gz").value());
    // Pinned for libdeflate 1.14; `libdeflate-gzip -6 -c < plain` gives the same.
    EXPECT_EQ(gz.digest, "sha256:e19bf7b22eee890093e4a1e77c675011f40f5d57a4b34a5336ccdf2889d7d673");

    LayerOptions zstd = none;
    zstd.compression = Compression::zstd;
    auto zst = layer(dir / "zst", {hello()}, zstd);
    EXPECT_EQ(zst.diff_id, hello_tar_digest);
    EXPECT_EQ(zst.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
    EXPECT_EQ(zst.digest, "sha256:" + sha256_file(dir / "zst").value());
    // Pinned for libzstd 1.5.4; `zstd -3 -c plain` (a file: its size in the frame) gives the same.
    EXPECT_EQ(zst.digest,
              "sha256:d37c5b41708498fddec5b94f010bea080ad82ea4b60c24ffcad1acd04d4d2418");
}

TEST(LayerWriter, SameBlobWhateverTheOrderAndThreadCount) {
    testing::TestDir dir;
    make_tree(dir / "root");
    auto entries = entries_of(dir / "root");
    std::mt19937 rng(7);
    for (auto compression : {Compression::gzip, Compression::zstd}) {
        LayerOptions options{.epoch = 1, .compression = compression, .threads = 1};
        auto reference = layer(dir / "ref", entries, options);
        auto reference_bytes = read_file(dir / "ref").value();
        for (unsigned threads : {2u, 4u}) {
            std::shuffle(entries.begin(), entries.end(), rng);
            options.threads = threads;
            auto info = layer(dir / "blob", entries, options);
            EXPECT_EQ(info.digest, reference.digest) << threads;
            EXPECT_EQ(info.diff_id, reference.diff_id) << threads;
            EXPECT_EQ(read_file(dir / "blob").value(), reference_bytes) << threads;
        }
    }
}

// The benchmark's tree at a small size (bench/gen_tree.py: text, records, random files and a
// big file of alternating text and random MiBs), so the gzip layer spans several members and
// takes both the deflate and the stored path: the same blob for 1, 2 and 8 threads, and gunzip
// gives back the tar of the diff_id.
TEST(LayerWriter, CopyHeavyTreeSameGzipBlobFor1_2_8Threads) {
    testing::TestDir dir;
    auto [log, status] = run("python3 " FACTORY_SOURCE_DIR "/bench/gen_tree.py '" +
                             (dir / "root").string() + "' 300 4 3 2>&1");
    ASSERT_EQ(status, 0) << log;
    auto entries = entries_of(dir / "root");
    LayerOptions options{.epoch = 1, .compression = Compression::gzip, .threads = 1};
    auto reference = layer(dir / "ref", entries, options);
    auto reference_bytes = read_file(dir / "ref", std::uint64_t{1} << 30).value();
    EXPECT_GT(reference.size, 3u << 20); // several 1 MiB members
    for (unsigned threads : {2u, 8u}) {
        options.threads = threads;
        auto info = layer(dir / "blob", entries, options);
        EXPECT_EQ(info.digest, reference.digest) << threads;
        EXPECT_EQ(read_file(dir / "blob", std::uint64_t{1} << 30).value(), reference_bytes)
            << threads;
    }
    auto [tar_sha, s] = run("gzip -dc < " + (dir / "ref").string() + " | sha256sum");
    EXPECT_EQ(s, 0);
    EXPECT_EQ("sha256:" + tar_sha.substr(0, 64), reference.diff_id);
}

TEST(LayerWriter, BlobsDecompressToTheDiffId) {
    testing::TestDir dir;
    make_tree(dir / "root");
    auto entries = entries_of(dir / "root");
    auto plain = layer(dir / "plain", entries, {.compression = Compression::none});
    auto gz = layer(dir / "gz", entries, {.compression = Compression::gzip});
    auto zst = layer(dir / "zst", entries, {.compression = Compression::zstd});
    EXPECT_EQ(gz.diff_id, plain.digest);
    EXPECT_EQ(zst.diff_id, plain.digest);
    EXPECT_LT(gz.size, plain.size);
    EXPECT_LT(zst.size, plain.size);
    auto [from_gzip, s1] = run("gzip -dc < " + (dir / "gz").string() + " | sha256sum");
    EXPECT_EQ(s1, 0);
    EXPECT_EQ("sha256:" + from_gzip.substr(0, 64), plain.digest);
    auto [from_zstd, s2] = run("zstd -q -dc < " + (dir / "zst").string() + " | sha256sum");
    EXPECT_EQ(s2, 0);
    EXPECT_EQ("sha256:" + from_zstd.substr(0, 64), plain.digest);
    // GNU tar lists the same tree back, hardlink included.
    auto [listing, s3] = run("tar -tvf " + (dir / "plain").string() + " | grep -c ' link to '");
    EXPECT_EQ(s3, 0);
    EXPECT_EQ(listing, "1\n");
}

TEST(LayerWriter, Errors) {
    testing::TestDir dir;
    Entry dup = hello();
    auto duplicate = layer_to(dir / "x", {hello(), dup}, {});
    ASSERT_FALSE(duplicate);
    EXPECT_EQ(duplicate.error(), "duplicate path in layer: hello.txt");

    auto level = layer_to(dir / "x", {hello()}, {.compression = Compression::gzip, .level = 0});
    ASSERT_FALSE(level);
    EXPECT_EQ(level.error(), "gzip level must be 1..9, not 0");

    // /dev/full fails every write with ENOSPC.
    Fd full(::open("/dev/full", O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(full);
    for (auto compression : {Compression::none, Compression::gzip, Compression::zstd}) {
        auto r = write_layer({hello()}, {.compression = compression}, full.get());
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), "cannot write layer blob: No space left on device");
    }
}

TEST(LayerWriter, CompressionNames) {
    EXPECT_EQ(parse_compression("gzip").value(), Compression::gzip);
    EXPECT_EQ(parse_compression("zstd").value(), Compression::zstd);
    EXPECT_EQ(parse_compression("none").value(), Compression::none);
    EXPECT_EQ(parse_compression("xz").error(),
              "unknown compression \"xz\" (expected gzip, zstd or none)");
    EXPECT_EQ(media_type(Compression::zstd), "application/vnd.oci.image.layer.v1.tar+zstd");
}

// Throughput on a real tree, blobs to /dev/null (tar + both hashes + compression):
//   FACTORY_BENCH_TREE=/some/dir [FACTORY_BENCH_MODE=gzip2] [REPEAT=n] layer_writer_test
//     --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
// bench/raw-compression.sh runs it next to the tools' raw limits, one mode per process.
TEST(LayerWriter, DISABLED_Throughput) {
    const char* tree = std::getenv("FACTORY_BENCH_TREE");
    if (!tree) GTEST_SKIP() << "set FACTORY_BENCH_TREE";
    const char* only = std::getenv("FACTORY_BENCH_MODE");
    const int repeat = std::max(1, std::atoi(std::getenv("REPEAT") ? std::getenv("REPEAT") : "1"));
    auto entries = entries_of(tree);
    Fd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    struct Mode {
        const char* key;
        const char* name;
        LayerOptions options;
    };
    const Mode modes[] = {
        {"none", "none", {.compression = Compression::none}},
        {"gzip1", "gzip -6, 1 thread", {.compression = Compression::gzip, .threads = 1}},
        {"gzip2", "gzip -6, 2 threads", {.compression = Compression::gzip, .threads = 2}},
        {"zstd", "zstd -3", {.compression = Compression::zstd}},
    };
    for (const auto& mode : modes) {
        if (only && std::string_view(only) != mode.key) continue;
        struct rusage usage {};
        ::getrusage(RUSAGE_SELF, &usage);
        const long baseline = usage.ru_maxrss; // the entries, the binary, gtest
        Result<LayerInfo> info;
        double seconds = 1e9; // the best of `repeat` runs: the one other load disturbed least
        for (int i = 0; i < repeat; ++i) {
            auto start = std::chrono::steady_clock::now();
            info = write_layer(entries, mode.options, null.get());
            auto end = std::chrono::steady_clock::now();
            seconds = std::min(seconds, std::chrono::duration<double>(end - start).count());
            ASSERT_TRUE(info) << info.error();
        }
        ::getrusage(RUSAGE_SELF, &usage);
        // The tar's size is the total of what was hashed for the diff_id: recompute it cheaply.
        auto tar = write_layer(entries, {.compression = Compression::none}, null.get());
        ASSERT_TRUE(tar);
        std::printf("%-20s %6.2f s %7.1f MB/s of tar (%.1f MB -> %.1f MB), peak RSS %.1f MiB "
                    "(+%.1f over the process before)\n",
                    mode.name, seconds, tar->size / 1e6 / seconds, tar->size / 1e6,
                    info->size / 1e6, usage.ru_maxrss / 1024.0,
                    (usage.ru_maxrss - baseline) / 1024.0);
    }
}

} // namespace
} // namespace factory::layer
