// The safe layer applier: well-formed layers in both output modes, both resolvers, and the
// bad-input corpus of tests/data/make-hostile-layers.py — each case rejected or contained,
// nothing written outside the root (a sentinel directory beside it is compared before and
// after), no crash.
#include "factory/runtime/applier.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::runtime;

namespace {

constexpr std::int64_t mtime = 1'000'000'000;

// The corpus is generated once per process into a directory beside a sentinel directory that
// hostile layers aim at by absolute and relative paths.
struct Corpus {
    fs::path dir, sentinel;
    nlohmann::json index;
};

const Corpus& corpus() {
    static Corpus c = [] {
        Corpus c;
        auto base =
            fs::temp_directory_path() / ("factory-runtime-corpus-" + std::to_string(::getpid()));
        fs::remove_all(base);
        c.dir = base / "layers";
        c.sentinel = base / "sentinel";
        fs::create_directories(c.sentinel / "sub");
        std::ofstream(c.sentinel / "secret") << "secret\n";
        std::string cmd = "python3 " FACTORY_SOURCE_DIR "/tests/data/make-hostile-layers.py '" +
                          c.dir.string() + "' '" + c.sentinel.string() + "'";
        if (std::system(cmd.c_str()) != 0)
            throw std::runtime_error("corpus generator failed: " + cmd);
        std::ifstream in(c.dir / "index.json");
        c.index = nlohmann::json::parse(in);
        return c;
    }();
    return c;
}

struct CorpusCleanup : ::testing::Environment {
    void TearDown() override {
        if (!::testing::UnitTest::GetInstance()->Failed())
            fs::remove_all(corpus().dir.parent_path());
    }
};
[[maybe_unused]] auto* const cleanup_env = ::testing::AddGlobalTestEnvironment(new CorpusCleanup);

fs::path layer(const std::string& name) {
    const auto& c = corpus();
    return c.dir / c.index.at(name).at("file").get<std::string>();
}
std::string expected(const std::string& name, const char* field) {
    return corpus().index.at(name).at(field).get<std::string>();
}

// Every path below dir with its type, mode, owner, size, mtime and content digest.
std::map<std::string, std::string> fingerprint(const fs::path& dir) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
         !ec && it != end; it.increment(ec)) {
        struct stat st {};
        ::lstat(it->path().c_str(), &st);
        std::ostringstream s;
        s << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid << " "
          << st.st_size << " " << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
        if (S_ISREG(st.st_mode)) s << " " << sha256_file(it->path().string()).value_or("?");
        out[fs::relative(it->path(), dir).string()] = s.str();
    }
    struct stat st {};
    ::lstat(dir.c_str(), &st);
    out["."] = std::to_string(st.st_mode) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
               std::to_string(st.st_mtim.tv_nsec);
    return out;
}

std::string host_file_stamp(const char* path) {
    struct stat st {};
    if (::lstat(path, &st) != 0) return "absent";
    return std::to_string(st.st_ino) + " " + std::to_string(st.st_size) + " " +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

struct stat lstat_of(const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) st.st_mode = 0;
    return st;
}

std::string xattr(const fs::path& p, const char* name) {
    char buf[256];
    ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
    return n < 0 ? std::string("<none>") : std::string(buf, static_cast<std::size_t>(n));
}

bool is_whiteout(const fs::path& p) {
    auto st = lstat_of(p);
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// Compresses a file with zstd into a sibling file.
fs::path zstd_copy(const fs::path& tar, const fs::path& out) {
    auto data = read(tar);
    std::string z(ZSTD_compressBound(data.size()), '\0');
    auto n = ZSTD_compress(z.data(), z.size(), data.data(), data.size(), 3);
    z.resize(n);
    std::ofstream(out, std::ios::binary) << z;
    return out;
}

class Root {
  public:
    explicit Root(const fs::path& path) : path_(path) {
        fs::create_directories(path_);
        fd_ = Fd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    Result<ApplyStats> apply(const fs::path& blob, const ApplyOptions& o) {
        return apply_layer(blob, fd_.get(), o);
    }
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& rel) const { return path_ / rel; }

  private:
    fs::path path_;
    Fd fd_;
};

bool root_user() {
    return factory::testing::privileged();
}

// ---- well-formed layers, both resolvers ------------------------------------------------------

class ApplierTest : public ::testing::TestWithParam<Resolver> {
  protected:
    ApplyOptions options(ApplyMode mode = ApplyMode::rootfs) const {
        ApplyOptions o;
        o.mode = mode;
        o.resolver = GetParam();
        return o;
    }
    factory::testing::TestDir dir;
};

TEST_P(ApplierTest, BasicTreeKeepsTypesModesOwnersXattrsAndTimes) {
    if (!root_user()) GTEST_SKIP() << "needs root (chown, security.capability)";
    Root root(dir / "root");
    auto stats = root.apply(layer("ok-basic"), options());
    ASSERT_TRUE(stats) << stats.error();
    EXPECT_EQ(stats->diff_id, expected("ok-basic", "diff_id"));
    EXPECT_EQ(stats->digest, expected("ok-basic", "digest"));
    EXPECT_TRUE(stats->root_entry);
    EXPECT_EQ(stats->hardlinks, 1u);
    EXPECT_EQ(stats->symlinks, 2u);
    EXPECT_EQ(stats->fifos, 1u);

    auto tool = lstat_of(root / "bin/tool");
    EXPECT_TRUE(S_ISREG(tool.st_mode));
    EXPECT_EQ(tool.st_mode & 07777, 04755u);
    EXPECT_EQ(read(root / "bin/tool"), "#!/bin/sh\necho tool\n");
    EXPECT_NE(xattr(root / "bin/tool", "security.capability"), "<none>");
    EXPECT_EQ(tool.st_mtim.tv_sec, mtime);

    auto user = lstat_of(root / "home/user");
    EXPECT_EQ(user.st_mode & 07777, 0700u);
    EXPECT_EQ(user.st_uid, 1000u);
    EXPECT_EQ(user.st_gid, 1000u);
    EXPECT_EQ(user.st_mtim.tv_sec, mtime + 3) << "directory mtimes are set last";
    EXPECT_EQ(lstat_of(root / "bin").st_mtim.tv_sec, mtime + 1);

    auto notes = lstat_of(root / "home/user/notes.txt");
    EXPECT_EQ(notes.st_uid, 1000u);
    EXPECT_EQ(notes.st_mode & 07777, 0600u);
    EXPECT_EQ(xattr(root / "home/user/notes.txt", "user.comment"), "kept");
    EXPECT_EQ(xattr(root / "home/user/notes.txt", "trusted.overlay.opaque"), "<none>");
    EXPECT_EQ(xattr(root / "home/user/notes.txt", "trusted.overlay.redirect"), "<none>");
    EXPECT_EQ(lstat_of(root / "home/user/notes.link").st_ino, notes.st_ino);
    EXPECT_EQ(notes.st_nlink, 2u);

    EXPECT_EQ(fs::read_symlink(root / "home/user/to-notes"), "notes.txt");
    EXPECT_EQ(fs::read_symlink(root / "home/user/dangling"), "/nowhere/at/all");
    EXPECT_TRUE(S_ISFIFO(lstat_of(root / "home/user/fifo").st_mode));
    EXPECT_EQ(lstat_of(root / "home/user/fifo").st_mode & 07777, 0640u);
    EXPECT_EQ(read(root / "home/user/caf\u00e9-\u00fcml\u00e4ut"), "utf8 name\n");
    EXPECT_EQ(read(root / "absolute-name"), "contained\n");
    EXPECT_EQ(read(root / "dot-slash"), "x\n");
    EXPECT_EQ(lstat_of(root.path()).st_mode & 07777, 0755u);
}

TEST_P(ApplierTest, GzipZstdAndMultiMemberStreamsHashToTheirDiffIds) {
    Root root(dir / "root");
    for (const char* name : {"ok-basic-gz", "ok-multi-member-gz"}) {
        Root r(dir / name);
        auto stats = r.apply(layer(name), options());
        ASSERT_TRUE(stats) << stats.error();
        EXPECT_EQ(stats->diff_id, expected(name, "diff_id")) << name;
        EXPECT_EQ(stats->digest, expected(name, "digest")) << name;
        EXPECT_LT(stats->compressed_bytes, stats->tar_bytes);
    }
    auto zst = zstd_copy(layer("ok-basic"), dir / "basic.tar.zst");
    auto stats = root.apply(zst, options());
    ASSERT_TRUE(stats) << stats.error();
    EXPECT_EQ(stats->diff_id, expected("ok-basic", "diff_id"));
    EXPECT_EQ(stats->digest, "sha256:" + sha256_file(zst.string()).value());
    EXPECT_EQ(read(dir / "ok-multi-member-gz/two"), std::string(10000, '2'));
}

TEST_P(ApplierTest, MismatchedDiffIdIsAnError) {
    Root root(dir / "root");
    auto o = options();
    o.expected_diff_id = "sha256:" + std::string(64, '0');
    auto stats = root.apply(layer("ok-lower-gz"), o);
    ASSERT_FALSE(stats);
    EXPECT_NE(stats.error().find("hashes to " + expected("ok-lower-gz", "diff_id")),
              std::string::npos)
        << stats.error();
    o.expected_diff_id.clear();
    o.expected_digest = "sha256:" + std::string(64, '1');
    stats = root.apply(layer("ok-lower-gz"), o);
    ASSERT_FALSE(stats);
    EXPECT_NE(stats.error().find("the blob hashes to"), std::string::npos) << stats.error();
}

TEST_P(ApplierTest, WhiteoutsAndOpaqueDirsInARootfs) {
    Root root(dir / "root");
    ASSERT_TRUE(root.apply(layer("ok-lower"), options()));
    auto stats = root.apply(layer("ok-upper-gz"), options());
    ASSERT_TRUE(stats) << stats.error();
    EXPECT_FALSE(fs::exists(fs::symlink_status(root / "c")));
    EXPECT_FALSE(fs::exists(root / "a/x"));
    EXPECT_EQ(read(root / "a/y"), "ay");
    EXPECT_FALSE(fs::exists(root / "b/z")) << "opaque: lower content hidden";
    EXPECT_FALSE(fs::exists(root / "b/sub"));
    EXPECT_EQ(read(root / "b/-early"), "upper") << "opaque keeps this layer's entries, even "
                                                   "those listed before the marker";
    EXPECT_EQ(read(root / "b/new"), "new");
    EXPECT_TRUE(fs::is_directory(root / "d"));
    EXPECT_FALSE(fs::exists(root / "d/keep"));
    EXPECT_TRUE(fs::is_directory(root / "e")) << "an opaque marker implies its directory";
    EXPECT_FALSE(fs::exists(root / "f")) << ".wh..wh.plnk is skipped altogether";
    EXPECT_EQ(stats->opaque_dirs, 2u);
    EXPECT_EQ(stats->whiteouts, 3u);
    EXPECT_EQ(stats->skipped_other, 1u) << ".wh..wh.plnk";

    ASSERT_TRUE(root.apply(layer("ok-through-lower"), options()));
    EXPECT_TRUE(fs::is_symlink(root / "lib")) << "a parent symlink is followed, not replaced";
    EXPECT_EQ(read(root / "usr/lib/libfoo.so"), "through the lib symlink");
    EXPECT_EQ(lstat_of(root / "shared-link").st_ino, lstat_of(root / "shared").st_ino)
        << "a hardlink may target a lower layer's file";

    ASSERT_TRUE(root.apply(layer("ok-wh-and-entry"), options()));
    EXPECT_TRUE(fs::exists(root / "w/new"));
    EXPECT_FALSE(fs::exists(root / "w/old")) << "whiteout + directory in one layer = opaque";
    EXPECT_EQ(read(root / "f2"), "same layer") << "the layer's own entry survives its whiteout";
}

TEST_P(ApplierTest, WhiteoutsBecomeOverlayFormInASnapshot) {
    if (!root_user()) GTEST_SKIP() << "needs root (mknod, trusted.* xattrs)";
    Root lower(dir / "lower"), upper(dir / "upper");
    ASSERT_TRUE(lower.apply(layer("ok-lower"), options(ApplyMode::overlay)));
    auto stats = upper.apply(layer("ok-upper"), options(ApplyMode::overlay));
    ASSERT_TRUE(stats) << stats.error();
    EXPECT_TRUE(is_whiteout(upper / "c"));
    EXPECT_TRUE(is_whiteout(upper / "a/x"));
    EXPECT_FALSE(fs::exists(upper / "a/y")) << "a snapshot holds its own layer only";
    EXPECT_EQ(xattr(upper / "b", "trusted.overlay.opaque"), "y");
    EXPECT_EQ(read(upper / "b/-early"), "upper");
    EXPECT_TRUE(is_whiteout(upper / "d/keep"));
    EXPECT_EQ(xattr(upper / "d", "trusted.overlay.opaque"), "<none>");
    EXPECT_EQ(xattr(upper / "e", "trusted.overlay.opaque"), "y");
    EXPECT_FALSE(fs::exists(upper / "f/.wh..wh.plnk"));
    EXPECT_EQ(xattr(lower / "a", "trusted.overlay.opaque"), "<none>");

    Root both(dir / "both");
    ASSERT_TRUE(both.apply(layer("ok-wh-and-entry"), options(ApplyMode::overlay)));
    EXPECT_EQ(xattr(both / "w", "trusted.overlay.opaque"), "y");
    EXPECT_EQ(read(both / "f2"), "same layer");

    Root through(dir / "through");
    auto r = through.apply(layer("ok-through-lower"), options(ApplyMode::overlay));
    ASSERT_FALSE(r) << "a snapshot can't hardlink into a lower layer";
    EXPECT_NE(r.error().find("lower layers"), std::string::npos) << r.error();
}

TEST_P(ApplierTest, DuplicatesLastOneWins) {
    Root root(dir / "root");
    ASSERT_TRUE(root.apply(layer("ok-dupes"), options()));
    EXPECT_EQ(read(root / "dup"), "second");
    EXPECT_EQ(lstat_of(root / "dup").st_mode & 07777, 0600u);
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(root / "dd")));
    EXPECT_EQ(read(root / "dd"), "file replaces dir");
    EXPECT_TRUE(fs::is_directory(fs::symlink_status(root / "fd")));
}

INSTANTIATE_TEST_SUITE_P(Resolvers, ApplierTest,
                         ::testing::Values(Resolver::openat2, Resolver::walk),
                         [](const auto& info) {
                             return info.param == Resolver::openat2 ? "openat2" : "walk";
                         });

// ---- the bad-input corpus ----------------------------------------------------------------------

enum class Expect { error, contained };

struct Hostile {
    const char* name;
    Expect expect;
    const char* error_part; // for Expect::error
};

void PrintTo(const Hostile& h, std::ostream* os) {
    *os << h.name;
}

// Each case in both compressions, both modes and both resolvers.
const Hostile hostile_cases[] = {
    {"bad-dotdot", Expect::error, "'..' in the path"},
    {"bad-dotdot-nested", Expect::error, "'..' in the path"},
    {"bad-symlink-abs-write", Expect::error, "symbolic links"},
    {"bad-symlink-sentinel-write", Expect::contained, nullptr},
    {"bad-symlink-rel-write", Expect::contained, nullptr},
    {"bad-symlink-replace-dir", Expect::contained, nullptr},
    {"bad-symlink-replace-file", Expect::contained, nullptr},
    {"bad-hardlink-dotdot", Expect::error, "'..' in the path"},
    {"bad-hardlink-abs", Expect::error, "does not exist"},
    {"bad-hardlink-sentinel", Expect::error, "does not exist"},
    {"bad-hardlink-via-symlink", Expect::error, "does not exist"},
    {"bad-hardlink-via-rel-symlink", Expect::error, "does not exist"},
    {"bad-hardlink-dir", Expect::error, "is a directory"},
    {"bad-hardlink-data", Expect::contained, nullptr},
    {"bad-whiteout-dotdot", Expect::error, "invalid whiteout"},
    {"bad-whiteout-empty", Expect::error, "invalid whiteout"},
    {"bad-whiteout-dot", Expect::error, "invalid whiteout"},
    {"bad-opaque-through-symlink", Expect::contained, nullptr}, // or an error in overlay mode
    {"bad-whiteout-through-symlink", Expect::contained, nullptr},
    {"bad-root-symlink", Expect::error, "would replace the root"},
    {"bad-root-symlink-slash", Expect::error, "would replace the root"},
    // libarchive reads a file named "./" as a directory; its data then corrupts the stream.
    {"bad-root-file", Expect::error, "Damaged tar archive"},
    {"bad-devices", Expect::contained, nullptr},
    {"bad-bad-uid", Expect::error, "invalid uid 4294967295"},
    {"bad-deep", Expect::error, "deeper than 1024"},
    {"bad-long-name", Expect::error, "longer than 4096"},
    {"bad-pax-huge-size", Expect::error, "over the cap"},
    {"bad-truncated", Expect::error, "runcated"},
    {"bad-gzip-trailing", Expect::error, "trailing garbage"},
    {"bad-not-tar", Expect::error, ""},
};

class HostileTest
    : public ::testing::TestWithParam<std::tuple<Hostile, bool, ApplyMode, Resolver>> {
  protected:
    factory::testing::TestDir dir;
};

TEST_P(HostileTest, RejectedOrContained) {
    auto [c, gz, mode, resolver] = GetParam();
    std::string name = c.name;
    if (gz && corpus().index.contains(name + "-gz"))
        name += "-gz";
    else if (gz)
        GTEST_SKIP() << "no gzip variant";
    const auto& sentinel = corpus().sentinel;
    auto before = fingerprint(sentinel);
    auto passwd = host_file_stamp("/etc/passwd"), shadow = host_file_stamp("/etc/shadow");

    Root root(dir / "root");
    ApplyOptions o;
    o.mode = mode;
    o.resolver = resolver;
    auto r = root.apply(layer(name), o);
    if (c.expect == Expect::error) {
        ASSERT_FALSE(r) << name << " was accepted";
        EXPECT_NE(r.error().find(c.error_part), std::string::npos) << r.error();
    } else if (!r) {
        // Refusing is always acceptable for a contained case; say why in the log.
        std::printf("  %s refused: %s\n", name.c_str(), r.error().c_str());
    }
    EXPECT_EQ(fingerprint(sentinel), before) << "the sentinel next to the root changed";
    EXPECT_EQ(host_file_stamp("/etc/passwd"), passwd);
    EXPECT_EQ(host_file_stamp("/etc/shadow"), shadow);
    // Nothing beside the root either.
    std::vector<std::string> beside;
    for (const auto& e : fs::directory_iterator(dir.path()))
        beside.push_back(e.path().filename());
    EXPECT_EQ(beside, std::vector<std::string>{"root"});
}

std::string hostile_name(const ::testing::TestParamInfo<HostileTest::ParamType>& info) {
    auto [c, gz, mode, resolver] = info.param;
    std::string n = c.name;
    for (auto& ch : n)
        if (ch == '-') ch = '_';
    return n + (gz ? "_gz" : "") + (mode == ApplyMode::overlay ? "_overlay" : "_rootfs") +
           (resolver == Resolver::walk ? "_walk" : "_openat2");
}

INSTANTIATE_TEST_SUITE_P(Corpus, HostileTest,
                         ::testing::Combine(::testing::ValuesIn(hostile_cases), ::testing::Bool(),
                                            ::testing::Values(ApplyMode::rootfs,
                                                              ApplyMode::overlay),
                                            ::testing::Values(Resolver::openat2, Resolver::walk)),
                         hostile_name);

// ---- specific outcomes ---------------------------------------------------------------------

TEST(ApplierHostile, SymlinkedWritesLandInsideTheRoot) {
    factory::testing::TestDir dir;
    Root root(dir / "root");
    ASSERT_TRUE(root.apply(layer("bad-symlink-sentinel-write"), {}));
    auto inside = root.path() / corpus().sentinel.relative_path() / "pwned";
    EXPECT_EQ(read(inside), "pwned\n") << "the absolute symlink resolves inside the root";
    EXPECT_FALSE(fs::exists(corpus().sentinel / "pwned"));

    Root rel(dir / "rel");
    ASSERT_TRUE(rel.apply(layer("bad-symlink-rel-write"), {}));
    EXPECT_EQ(read(rel.path() / corpus().sentinel.relative_path() / "pwned"), "pwned\n")
        << "'..' in a symlink target stops at the root";

    Root replace(dir / "replace");
    ASSERT_TRUE(replace.apply(layer("bad-symlink-replace-file"), {}));
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(replace / "f")));
    EXPECT_EQ(read(replace / "f"), "pwned\n");
    EXPECT_EQ(read(corpus().sentinel / "secret"), "secret\n");
}

TEST(ApplierHostile, HardlinkDataIsNotWrittenThroughTheLink) {
    factory::testing::TestDir dir;
    Root root(dir / "root");
    auto r = root.apply(layer("bad-hardlink-data"), {});
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(read(root / "target"), "original");
    EXPECT_EQ(lstat_of(root / "link").st_ino, lstat_of(root / "target").st_ino);
}

TEST(ApplierHostile, DevicesOnlyWhenAllowedAndPrivileged) {
    if (!root_user()) GTEST_SKIP() << "needs root (mknod)";
    factory::testing::TestDir dir;
    Root off(dir / "off");
    ApplyOptions o;
    o.devices = false;
    auto r = off.apply(layer("bad-devices"), o);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->skipped_devices, 3u);
    EXPECT_FALSE(fs::exists(fs::symlink_status(off / "dev/mem")));

    Root on(dir / "on");
    r = on.apply(layer("bad-devices"), {});
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->devices, 3u);
    auto mem = lstat_of(on / "dev/mem");
    EXPECT_TRUE(S_ISCHR(mem.st_mode));
    EXPECT_EQ(mem.st_rdev, makedev(1, 1));
    EXPECT_TRUE(S_ISBLK(lstat_of(on / "dev/sda").st_mode));

    Root snap(dir / "snap");
    ApplyOptions ov;
    ov.mode = ApplyMode::overlay;
    r = snap.apply(layer("bad-devices"), ov);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->skipped_devices, 1u) << "a 0/0 character device would be a whiteout";
    EXPECT_FALSE(fs::exists(fs::symlink_status(snap / "dev/wh")));
}

TEST(ApplierHostile, HugePaxSizeIsRefusedBeforeWriting) {
    factory::testing::TestDir dir;
    Root root(dir / "root");
    auto r = root.apply(layer("bad-pax-huge-size"), {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("size 1099511627776 is over the cap"), std::string::npos) << r.error();
    EXPECT_FALSE(fs::exists(root / "huge"));
    // Within a raised cap, the stream simply ends short: an error, never 1 TiB of writes.
    ApplyOptions o;
    o.limits.stream.max_bytes = 2ull << 40;
    r = root.apply(layer("bad-pax-huge-size"), o);
    ASSERT_FALSE(r);
    EXPECT_LE(fs::file_size(root / "huge"), 4096u);
}

TEST(ApplierHostile, GzipBombHitsTheRatioOrSizeCap) {
    factory::testing::TestDir dir;
    Root root(dir / "root");
    ApplyOptions o;
    o.limits.stream.ratio_after = 8 << 20; // the default is 1 GiB: too slow for a unit test
    o.limits.stream.max_ratio = 100;
    auto r = root.apply(layer("bad-gzip-bomb"), o);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("compression ratio over 100:1"), std::string::npos) << r.error();
    EXPECT_LT(fs::file_size(root / "zeros"), 16u << 20);

    ApplyOptions capped;
    capped.limits.stream.max_bytes = 4 << 20;
    r = root.apply(layer("bad-gzip-bomb"), capped);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("over the cap of 4194304"), std::string::npos) << r.error();
}

TEST(ApplierHostile, EntryCountIsCapped) {
    factory::testing::TestDir dir;
    Root root(dir / "root");
    ApplyOptions o;
    o.limits.max_entries = 1000; // the default is a million
    auto r = root.apply(layer("bad-many-gz"), o);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("more than 1000 entries"), std::string::npos) << r.error();
    Root ok(dir / "ok");
    r = ok.apply(layer("bad-many-gz"), {});
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->files, 2000u);
}

TEST(ApplierHostile, DeferredDirectoryTimesDoNotFollowASwappedSymlink) {
    // "d" is a directory (its mtime deferred), then a symlink to the sentinel: the deferred
    // utimes must not reach the sentinel (libarchive CVE-2021-31566 / CVE-2021-23177).
    factory::testing::TestDir dir;
    auto before = fingerprint(corpus().sentinel);
    Root root(dir / "root");
    ASSERT_TRUE(root.apply(layer("bad-symlink-replace-dir"), {}));
    EXPECT_TRUE(fs::is_symlink(root / "d"));
    EXPECT_EQ(fingerprint(corpus().sentinel), before);
}

// Random corruption of well-formed layers — header fields rewritten with a valid checksum, so
// that libarchive takes them, and PAX records — never crashes and never escapes: every outcome
// is an error or a tree inside the root.
TEST(ApplierHostile, MutatedHeadersNeverEscape) {
    factory::testing::TestDir dir;
    std::string original = read(layer("ok-basic")) + "";
    auto upper = read(layer("ok-upper"));
    std::mt19937 rng(20240611);
    auto before = fingerprint(corpus().sentinel);
    int accepted = 0;
    for (int i = 0; i < 300; ++i) {
        std::string tar = i % 2 ? original : upper;
        std::vector<std::size_t> headers;
        for (std::size_t off = 0; off + 512 <= tar.size(); off += 512)
            if (tar.compare(off + 257, 5, "ustar") == 0) headers.push_back(off);
        for (int m = 0; m < 1 + i % 4; ++m) {
            std::size_t h = headers[rng() % headers.size()];
            // Mostly the name, link name, mode, type and size fields; sometimes the PAX block
            // that follows an 'x' header.
            std::size_t field = rng() % 4 == 0 ? 512 + rng() % 200 : rng() % 500;
            static const char alphabet[] = "/.\0a.wh..x/../\377";
            tar[h + field] =
                rng() % 3 == 0 ? alphabet[rng() % (sizeof alphabet - 1)] : static_cast<char>(rng());
            unsigned sum = 0;
            for (std::size_t k = 0; k < 512; ++k)
                sum += (k >= 148 && k < 156) ? ' ' : static_cast<unsigned char>(tar[h + k]);
            std::snprintf(&tar[h + 148], 8, "%06o", sum);
            tar[h + 155] = ' ';
        }
        auto blob = dir / "mutated.tar";
        std::ofstream(blob, std::ios::binary | std::ios::trunc) << tar;
        Root root(dir / "root");
        ApplyOptions o;
        o.mode = i % 3 == 0 ? ApplyMode::overlay : ApplyMode::rootfs;
        o.resolver = i % 5 == 0 ? Resolver::walk : Resolver::automatic;
        auto r = root.apply(blob, o);
        accepted += r.has_value();
        std::error_code ec;
        fs::remove_all(root.path(), ec);
        ASSERT_FALSE(ec) << ec.message();
    }
    EXPECT_EQ(fingerprint(corpus().sentinel), before);
    std::vector<std::string> beside;
    for (const auto& e : fs::directory_iterator(dir.path()))
        beside.push_back(e.path().filename());
    EXPECT_EQ(beside, std::vector<std::string>{"mutated.tar"});
    std::printf("  %d of 300 mutated layers applied, the rest refused\n", accepted);
}

// The applier alone, for bench/unpack.sh: applies the blobs named in FACTORY_BENCH_BLOBS
// (space-separated, in order) into the empty directory FACTORY_BENCH_ROOT, safety checks on
// (digests are computed, every path resolved in the root), as a RUN step's snapshot would be.
// Prints "apply seconds <s>": the time in the process, without the corpus this binary's other
// tests generate at start-up.
//   FACTORY_BENCH_BLOBS="a.tar.gz b.tar.gz" FACTORY_BENCH_ROOT=/fresh/dir runtime_applier_test
//     --gtest_also_run_disabled_tests --gtest_filter='*ApplyThroughput*'
TEST(Applier, DISABLED_ApplyThroughput) {
    const char* blobs = std::getenv("FACTORY_BENCH_BLOBS");
    const char* root = std::getenv("FACTORY_BENCH_ROOT");
    if (!blobs || !root) GTEST_SKIP() << "set FACTORY_BENCH_BLOBS and FACTORY_BENCH_ROOT";
    Fd dir(::open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir) << root;
    std::istringstream names(blobs);
    std::string blob;
    auto start = std::chrono::steady_clock::now();
    while (names >> blob) {
        auto stats = apply_layer(blob, dir.get(), {});
        ASSERT_TRUE(stats) << stats.error();
    }
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("apply seconds %.3f\n", seconds);
}

} // namespace
