// The builder's Tree reads layers through the one layer reader (runtime/tar_reader.hpp): a
// decompression bomb, a corrupt or a hostile layer is refused with the applier's own words.

#include <gtest/gtest.h>

#include <fcntl.h>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "factory/builder/tree.hpp"
#include "factory/runtime/applier.hpp"
#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"
#include "tests/unit/test_dir.hpp"

namespace fs = std::filesystem;
using factory::builder::Tree;

namespace {

// The hostile corpus (tests/data/make-hostile-layers.py) in the test's directory.
fs::path corpus(const factory::testing::TestDir& dir, const std::string& name) {
    auto out = dir / "layers";
    if (!fs::exists(out / "index.json")) {
        fs::create_directories(dir / "sentinel");
        std::string cmd = "python3 " FACTORY_SOURCE_DIR "/tests/data/make-hostile-layers.py '" +
                          out.string() + "' '" + (dir / "sentinel").string() + "'";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("corpus generator failed");
    }
    std::ifstream in(out / "index.json");
    auto index = nlohmann::json::parse(in);
    return out / index.at(name).at("file").get<std::string>();
}

// What the Tree says of a layer, and what the applier says of it, with the same limits.
std::pair<std::string, std::string> both_errors(const factory::testing::TestDir& dir,
                                                const fs::path& blob,
                                                const factory::runtime::StreamLimits& limits) {
    std::string tree_error, applier_error;
    auto content = dir / ("content-" + blob.filename().string());
    fs::create_directories(content);
    try {
        Tree t;
        t.apply_layer_blob(blob, content, limits);
    } catch (const factory::Error& e) {
        tree_error = e.what();
    }
    auto root_dir = dir / ("root-" + blob.filename().string());
    fs::create_directories(root_dir);
    factory::Fd root(::open(root_dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    factory::runtime::ApplyOptions o;
    o.limits.stream = limits;
    o.owners = factory::runtime::Owners::ignore;
    auto r = factory::runtime::apply_layer(blob, root.get(), o);
    if (!r) applier_error = r.error();
    return {tree_error, applier_error};
}

std::uint64_t dir_bytes(const fs::path& dir) {
    std::uint64_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) n += e.file_size();
    return n;
}

} // namespace

TEST(TreeLayers, ADecompressionBombIsRefusedAsTheApplierRefusesIt) {
    factory::testing::TestDir dir;
    factory::runtime::StreamLimits limits;
    limits.ratio_after = 8 << 20; // the default is 1 GiB: too slow for a unit test
    limits.max_ratio = 100;
    auto blob = corpus(dir, "bad-gzip-bomb");
    auto [tree, applier] = both_errors(dir, blob, limits);
    EXPECT_NE(tree.find("compression ratio over 100:1"), std::string::npos) << tree;
    EXPECT_NE(tree.find("a decompression bomb?"), std::string::npos) << tree;
    EXPECT_EQ(tree, applier) << "one reader, one error";
    EXPECT_LT(dir_bytes(dir / ("content-" + blob.filename().string())), 16u << 20)
        << "the extraction stopped at the cap";
}

TEST(TreeLayers, TheSizeCapHoldsForTheTree) {
    factory::testing::TestDir dir;
    factory::runtime::StreamLimits limits;
    limits.max_bytes = 4 << 20;
    auto [tree, applier] = both_errors(dir, corpus(dir, "bad-gzip-bomb"), limits);
    EXPECT_NE(tree.find("4194304 bytes"), std::string::npos) << tree;
    EXPECT_EQ(tree, applier);
}

TEST(TreeLayers, CorruptStreamsAreRefusedInTheSameWords) {
    factory::testing::TestDir dir;
    for (const char* name : {"bad-gzip-trailing", "bad-truncated", "bad-not-tar"}) {
        auto [tree, applier] = both_errors(dir, corpus(dir, name), {});
        EXPECT_FALSE(tree.empty()) << name << " was accepted by the Tree";
        EXPECT_EQ(tree, applier) << name;
    }
}

TEST(TreeLayers, AWellFormedLayerIsReadWithItsContent) {
    factory::testing::TestDir dir;
    fs::create_directories(dir / "content");
    Tree t;
    t.apply_layer_blob(corpus(dir, "ok-multi-member-gz"), dir / "content");
    const auto* one = t.find("one");
    ASSERT_NE(one, nullptr);
    EXPECT_EQ(one->size, 10000u);
    EXPECT_EQ(one->source, "") << "nothing is extracted while the layer is read";
    EXPECT_TRUE(fs::is_empty(dir / "content"));
    auto contents = t.contents({"one", "no-such-file"});
    ASSERT_EQ(contents.size(), 1u);
    std::ifstream in(contents.at("one"));
    std::string content((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(content, std::string(10000, '1'));
    ASSERT_NE(t.find("two"), nullptr);
    // Asked again, or by a copy of the tree: the same file, not a second extraction.
    Tree copy = t;
    EXPECT_EQ(copy.contents({"one"}).at("one"), contents.at("one"));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir / "content"), fs::directory_iterator()), 1);
}

TEST(TreeLayers, ALaterLayerWinsTheContent) {
    factory::testing::TestDir dir;
    fs::create_directories(dir / "content");
    auto layer = [&](const std::string& name, const std::string& text) {
        fs::create_directories(dir / name);
        std::ofstream(dir / name / "f") << text;
        EXPECT_EQ(std::system(("tar -C " + (dir / name).string() + " -cf " +
                               (dir / (name + ".tar")).string() + " f")
                                  .c_str()),
                  0);
        return dir / (name + ".tar");
    };
    Tree t;
    t.apply_layer_blob(layer("a", "first"), dir / "content");
    Tree before = t;
    t.apply_layer_blob(layer("b", "second"), dir / "content");
    std::ifstream later(t.contents({"f"}).at("f"));
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(later)), {}), "second");
    std::ifstream earlier(before.contents({"f"}).at("f"));
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(earlier)), {}), "first");
    // A whiteout in a third layer: no content to give.
    t.apply({[] {
        factory::layer::Entry wh;
        wh.path = ".wh.f";
        return wh;
    }()});
    EXPECT_TRUE(t.contents({"f"}).empty());
}
