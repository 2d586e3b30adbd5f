#include "factory/oci/layout.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"
#include "tests/unit/test_util.hpp"

using factory::testing::slurp;

using namespace factory::oci;
namespace fs = std::filesystem;

namespace {

// A small image: a (fake, uncompressed) layer, its config and manifest.
Descriptor put_image(Layout& l, const std::string& content, const Platform& p = host_platform()) {
    auto layer = l.put_blob(std::string(media_type::layer_tar), content);
    ImageConfig c(p);
    c.add_layer(layer.digest, History{"1970-01-01T00:00:00Z", "test", "", "", false});
    Manifest m;
    m.config = l.put_blob(std::string(media_type::config), c.serialize());
    m.layers = {layer};
    return l.put_blob(std::string(media_type::manifest), serialize(m));
}

} // namespace

TEST(Layout, CreateWritesTheLayoutFiles) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    EXPECT_EQ(slurp(dir / "store/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
    EXPECT_EQ(
        slurp(dir / "store/index.json"),
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})");
    EXPECT_TRUE(fs::is_directory(dir / "store/blobs/sha256"));
    EXPECT_TRUE(l.index().manifests.empty());

    // Creating again keeps what is there.
    l.set_ref("a:1", put_image(l, "x"));
    auto again = Layout::create(dir / "store");
    EXPECT_EQ(again.refs().size(), 1u);
}

TEST(Layout, OpenValidatesTheLayout) {
    factory::testing::TestDir dir;
    fs::create_directories(dir / "x");
    try {
        Layout::open(dir / "x");
        FAIL() << "opened a directory without oci-layout";
    } catch (const factory::Error& e) {
        EXPECT_NE(std::string(e.what()).find(" is not an OCI image layout: cannot open"),
                  std::string::npos)
            << e.what();
    }
    std::ofstream(dir / "x/oci-layout") << R"({"imageLayoutVersion":"2.0.0"})";
    try {
        Layout::open(dir / "x");
        FAIL();
    } catch (const factory::Error& e) {
        EXPECT_EQ(std::string(e.what()), (dir / "x/oci-layout").string() +
                                             ": unsupported imageLayoutVersion \"2.0.0\" (factory "
                                             "reads 1.0.0)");
    }
    std::ofstream(dir / "x/oci-layout", std::ios::trunc) << R"({"imageLayoutVersion": "1.0.0"})";
    try {
        Layout::open(dir / "x");
        FAIL();
    } catch (const factory::Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  (dir / "x").string() + " is not an OCI image layout: it has no index.json");
    }
}

TEST(Layout, SetRefResolveAndRefs) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    auto one = put_image(l, "one");
    auto two = put_image(l, "two");
    EXPECT_FALSE(l.resolve("")); // empty index
    l.set_ref("hello:latest", one);
    EXPECT_EQ(l.resolve("")->digest, one.digest); // the only image
    l.set_ref("hello:2", two);
    EXPECT_FALSE(l.resolve("")); // ambiguous
    EXPECT_EQ(l.resolve("hello:latest")->digest, one.digest);
    EXPECT_EQ(l.resolve("hello")->digest, one.digest); // name alone means :latest
    EXPECT_EQ(l.resolve("hello:2")->digest, two.digest);
    EXPECT_EQ(l.resolve(two.digest)->digest, two.digest);
    EXPECT_FALSE(l.resolve("nope"));
    EXPECT_FALSE(l.resolve("sha256:" + std::string(64, '0')));

    // Replacing keeps the position and the other entries.
    l.set_ref("hello:latest", two);
    auto refs = l.refs();
    ASSERT_EQ(refs.size(), 2u);
    EXPECT_EQ(refs[0].first, "hello:latest");
    EXPECT_EQ(refs[0].second.digest, two.digest);
    EXPECT_EQ(refs[1].first, "hello:2");
    EXPECT_TRUE(l.remove_ref("hello:2"));
    EXPECT_FALSE(l.remove_ref("hello:2"));
    EXPECT_EQ(l.refs().size(), 1u);
    // index.json is written as Go would: compact, annotations in the descriptor.
    EXPECT_EQ(
        slurp(dir / "store/index.json"),
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
        R"("manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
            two.digest + R"(","size":)" + std::to_string(two.size) +
            R"(,"annotations":{"org.opencontainers.image.ref.name":"hello:latest"}}]})");
}

TEST(Layout, ResolveTakesAUniqueDigestPrefix) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    auto one = put_image(l, "one");
    l.set_ref("hello:latest", one);
    l.set_ref("hello:1", one); // one digest under two names: still one candidate
    const std::string hex = one.digest.substr(7);
    EXPECT_EQ(l.resolve("sha256:" + hex.substr(0, 12))->digest, one.digest);
    EXPECT_EQ(l.resolve(hex.substr(0, 12))->digest, one.digest); // without sha256:
    EXPECT_EQ(l.resolve(hex)->digest, one.digest);
    EXPECT_EQ(l.resolve("sha256:" + hex.substr(0, 30))->digest, one.digest);
    EXPECT_FALSE(l.resolve("sha256:" + hex.substr(0, 11))); // too short to be a prefix
    EXPECT_FALSE(l.resolve(hex.substr(0, 11)));
    EXPECT_FALSE(l.resolve("sha256:" + std::string(12, hex[0] == '0' ? '1' : '0')));

    // Another manifest whose digest shares the first 13 digits: ambiguous below 14.
    Descriptor twin = one;
    twin.digest = "sha256:" + hex.substr(0, 13) + std::string(51, hex[13] == 'f' ? 'e' : 'f');
    l.set_ref("twin:1", twin);
    try {
        l.resolve(hex.substr(0, 12));
        FAIL() << "an ambiguous prefix resolved";
    } catch (const factory::Error& e) {
        EXPECT_EQ(e.code(), factory::ExitCode::usage);
        EXPECT_EQ(std::string(e.what()), "the digest prefix '" + hex.substr(0, 12) +
                                             "' is ambiguous in " + (dir / "store").string() +
                                             ": it matches " + one.digest + ", " + twin.digest +
                                             " (give more digits)");
    }
    EXPECT_EQ(l.resolve(hex.substr(0, 14))->digest, one.digest);
}

// What an older build of a tag leaves once the tag moved on: its manifest resolves by digest and
// by prefix; its config and layer, blobs with digests as well, are no image.
TEST(Layout, ResolveFindsAManifestNoEntryNames) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    auto old = put_image(l, "old");
    auto now = put_image(l, "now");
    l.set_ref("hello:latest", now);
    ASSERT_TRUE(l.resolve(old.digest));
    EXPECT_EQ(l.resolve(old.digest)->digest, old.digest);
    EXPECT_EQ(l.resolve(old.digest)->size, old.size);
    EXPECT_EQ(l.resolve(old.digest)->media_type, media_type::manifest);
    EXPECT_EQ(l.resolve(old.digest.substr(0, 19))->digest, old.digest);
    EXPECT_EQ(l.resolve(old.digest.substr(7, 12))->digest, old.digest);
    EXPECT_EQ(l.resolve(now.digest.substr(7, 12))->digest, now.digest);
    auto m = l.read_manifest(old);
    ASSERT_TRUE(m);
    EXPECT_FALSE(l.resolve(m->config.digest));
    EXPECT_FALSE(l.resolve(m->config.digest.substr(0, 19)));
    EXPECT_FALSE(l.resolve(m->layers.front().digest));
    EXPECT_FALSE(l.resolve("sha256:" + std::string(64, '0')));
}

TEST(Layout, SetRefLeavesNoLockFileInTheLayout) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "out");
    l.set_ref("1.0", put_image(l, "x"));
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir / "out"))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"blobs", "index.json", "oci-layout"}));
}

TEST(Layout, ConcurrentSetRefLosesNothing) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    auto img = put_image(l, "x");
    constexpr int threads = 8, per_thread = 25;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            // Each thread opens its own Layout, as separate processes would.
            auto mine = Layout::open(dir / "store");
            for (int i = 0; i < per_thread; ++i)
                mine.set_ref("img" + std::to_string(t) + ":" + std::to_string(i), img);
        });
    for (auto& t : pool)
        t.join();
    EXPECT_EQ(l.refs().size(), static_cast<std::size_t>(threads * per_thread));
}

TEST(Layout, ConcurrentSetRefFromProcessesLosesNothing) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    auto img = put_image(l, "x");
    std::vector<pid_t> children;
    for (int p = 0; p < 4; ++p) {
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            try {
                auto mine = Layout::open(dir / "store");
                for (int i = 0; i < 20; ++i)
                    mine.set_ref("p" + std::to_string(p) + ":" + std::to_string(i), img);
            } catch (...) {
                ::_exit(1);
            }
            ::_exit(0);
        }
        children.push_back(pid);
    }
    for (auto pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    EXPECT_EQ(l.refs().size(), 80u);
}

TEST(Layout, CorruptBlobsAreDetectedOnRead) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    auto img = put_image(l, "x");
    auto m = l.read_manifest(img);
    ASSERT_TRUE(m) << m.error();
    auto config_path = l.blobs().path(*m->config.sha256_hex());
    auto bytes = slurp(config_path);
    bytes[bytes.size() - 2] = ' '; // same size, different content
    ::chmod(config_path.c_str(), 0644);
    std::ofstream(config_path, std::ios::trunc | std::ios::binary) << bytes;
    auto c = l.read_config(m->config);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), config_path.string() + ": content does not match its digest (got sha256:" +
                             factory::Sha256::hex(bytes) + ")");

    fs::remove(l.blobs().path(*img.sha256_hex()));
    auto gone = l.read_manifest(img);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error(), "blob " + img.digest + " is missing from " + (dir / "store").string());

    // A descriptor whose size lies.
    auto lie = m->config;
    lie.size += 1;
    auto r = l.read_blob(lie);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("its descriptor says"), std::string::npos) << r.error();
}

TEST(Layout, ResolveDescendsAnIndexByPlatform) {
    factory::testing::TestDir dir;
    auto l = Layout::create(dir / "store");
    Platform amd{"amd64", "linux", "", {}, ""}, arm{"arm64", "linux", "", {}, ""};
    auto a = put_image(l, "amd", amd);
    auto b = put_image(l, "arm", arm);
    a.platform = amd;
    b.platform = arm;
    Index multi;
    multi.manifests = {b, a};
    auto idx = l.put_blob(std::string(media_type::index), serialize(multi));
    l.set_ref("multi:1", idx);
    EXPECT_EQ(l.resolve("multi:1", amd)->digest, a.digest);
    EXPECT_EQ(l.resolve("multi:1", arm)->digest, b.digest);
    EXPECT_EQ(l.resolve(b.digest, amd)->digest, b.digest); // a child by digest
    try {
        l.resolve("multi:1", Platform{"s390x", "linux", "", {}, ""});
        FAIL();
    } catch (const factory::Error& e) {
        EXPECT_EQ(std::string(e.what()), (dir / "store").string() + ": image index " + idx.digest +
                                             " has no manifest for linux/s390x (it has: "
                                             "linux/arm64, linux/amd64)");
    }
    auto all = l.closure(idx);
    ASSERT_TRUE(all) << all.error();
    ASSERT_EQ(all->size(), 7u); // 2 × (layer, config, manifest) + index
    EXPECT_EQ(all->back().digest, idx.digest);
}
