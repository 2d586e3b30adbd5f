// Listings (builder/tree.hpp serialize_listing, parse_listing; docs/cache.md "Listings"): what
// reading a layer found, kept so that a later build applies it without opening the layer. A
// listing round-trips every field a tree keeps, bytes included; a tree applied from one is the
// tree read from the blob, content too; the parser refuses anything serialize_listing did not
// write, and a listing made under other reader limits.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "factory/builder/copy.hpp"
#include "factory/builder/tree.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/error.hpp"
#include "tests/unit/test_dir.hpp"

namespace fs = std::filesystem;
using factory::builder::LayerListing;
using factory::builder::parse_listing;
using factory::builder::serialize_listing;
using factory::builder::Tree;
using factory::layer::Entry;

namespace {

// Every field of an entry a tree keeps, in one line.
std::string describe(const Entry& e) {
    std::ostringstream out;
    out << static_cast<int>(e.type) << " " << std::oct << e.mode << std::dec << " " << e.uid << ":"
        << e.gid << " " << e.size << " [" << e.path << "] -> [" << e.link << "] src[" << e.source
        << "]";
    for (const auto& [name, value] : e.xattrs)
        out << " " << name << "=" << value.size() << ":" << value;
    return out.str();
}

std::vector<std::string> describe(const Tree& t) {
    std::vector<std::string> out;
    for (const auto& [path, e] : t.entries())
        out.push_back(path + " " + describe(e));
    return out;
}

std::string read_all(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

void sh(const std::string& cmd) {
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

LayerListing odd_listing() {
    LayerListing l;
    Entry dir;
    dir.path = "caf\xe9\ndir"; // not UTF-8, a newline: paths are bytes
    dir.type = Entry::Type::dir;
    dir.mode = 07755;
    dir.uid = 4294967295u;
    dir.gid = 65534;
    Entry file;
    file.path = "caf\xe9\ndir/f";
    file.size = 1ull << 40;
    file.xattrs = {{"user.bin", std::string("\0\xff\n", 3)}, {"security.capability", ""}};
    file.sha256 = std::string(64, 'a');
    Entry link;
    link.path = "l";
    link.type = Entry::Type::symlink;
    link.link = "../../x y\n";
    link.mode = 0777;
    Entry hard;
    hard.path = "h";
    hard.type = Entry::Type::hardlink;
    hard.link = "caf\xe9\ndir/f";
    Entry whiteout;
    whiteout.path = "gone/.wh.old";
    l.entries = {dir, file, link, hard, whiteout};
    l.ordinals = {1, 2, 300, 1ull << 33, (1ull << 33) + 1};
    return l;
}

} // namespace

TEST(TreeListing, RoundTripsEveryFieldAsBytes) {
    auto listing = odd_listing();
    auto body = serialize_listing(listing, {});
    auto back = parse_listing(body, {});
    ASSERT_TRUE(back) << back.error();
    ASSERT_EQ(back->entries.size(), listing.entries.size());
    for (std::size_t i = 0; i < listing.entries.size(); ++i)
        EXPECT_EQ(describe(back->entries[i]), describe(listing.entries[i])) << i;
    EXPECT_EQ(back->ordinals, listing.ordinals);
    EXPECT_EQ(serialize_listing(*back, {}), body) << "one spelling";
}

TEST(TreeListing, ATreeFromItsListingIsTheTreeFromTheBlob) {
    factory::testing::TestDir dir;
    // Two layers: the second replaces a file, removes another, empties a directory (opaque),
    // adds a hardlink and a symlink; gzip so that reading costs what it does in a store.
    sh("mkdir -p " + (dir / "a/etc/opq").string() + " " + (dir / "b/etc/opq").string() + " && cd " +
       (dir / "a").string() +
       " && printf one > etc/one && printf old > etc/replaced && printf x > etc/gone &&"
       " printf y > etc/opq/lower && tar --sort=name -czf ../a.tar.gz etc && cd ../b &&"
       " printf new > etc/replaced && printf two > etc/two && ln etc/two etc/two-hard &&"
       " ln -s two etc/two-sym && touch etc/.wh.gone etc/opq/.wh..wh..opq &&"
       " tar --sort=name -czf ../b.tar.gz etc");
    auto a = dir / "a.tar.gz", b = dir / "b.tar.gz";
    fs::create_directories(dir / "content-blob");
    fs::create_directories(dir / "content-listing");

    Tree from_blob;
    from_blob.apply_layer_blob(a, dir / "content-blob");
    from_blob.apply_layer_blob(b, dir / "content-blob");

    auto la = parse_listing(serialize_listing(Tree::list_layer_blob(a), {}), {});
    auto lb = parse_listing(serialize_listing(Tree::list_layer_blob(b), {}), {});
    ASSERT_TRUE(la && lb);
    // Applying a listing doesn't open its blob: it isn't there while it is applied.
    fs::rename(a, dir / "a.away");
    fs::rename(b, dir / "b.away");
    Tree from_listing;
    from_listing.apply_listing(std::move(*la), a, dir / "content-listing");
    from_listing.apply_listing(std::move(*lb), b, dir / "content-listing");
    EXPECT_EQ(describe(from_listing), describe(from_blob));
    EXPECT_EQ(from_listing.find("etc/gone"), nullptr);
    EXPECT_EQ(from_listing.find("etc/opq/lower"), nullptr);
    EXPECT_TRUE(fs::is_empty(dir / "content-listing"));

    // Content comes from the blobs when asked for, the later layer's where it replaced one.
    fs::rename(dir / "a.away", a);
    fs::rename(dir / "b.away", b);
    std::vector<std::string> files = {"etc/one", "etc/replaced", "etc/two"};
    auto got = from_listing.contents(files);
    auto want = from_blob.contents(files);
    ASSERT_EQ(got.size(), 3u);
    for (const auto& f : files)
        EXPECT_EQ(read_all(got.at(f)), read_all(want.at(f))) << f;
    EXPECT_EQ(read_all(got.at("etc/replaced")), "new");
}

// Reading a blob for its listing checks its digest on the way: a blob whose bytes are not the
// digest's (a tar of other content) is refused in verify's words, one of the digest is read.
TEST(TreeListing, ReadingABlobChecksItsDigest) {
    factory::testing::TestDir dir;
    sh("mkdir -p " + (dir / "t").string() + " && cd " + (dir / "t").string() +
       " && printf one > one && tar -czf ../a.tar.gz one && printf two > one &&"
       " tar -czf ../b.tar.gz one");
    auto digest = [](const fs::path& p) { return "sha256:" + factory::Sha256::hex(read_all(p)); };
    auto a = dir / "a.tar.gz", b = dir / "b.tar.gz";
    EXPECT_EQ(1u, Tree::list_layer_blob(a, {}, digest(a)).entries.size());
    try {
        Tree::list_layer_blob(b, {}, digest(a));
        FAIL() << "another blob's digest was accepted";
    } catch (const factory::Error& e) {
        EXPECT_EQ("blob " + digest(a) + " is corrupt: content hashes to " + digest(b),
                  std::string(e.what()));
    }
}

TEST(TreeListing, TheParserRefusesWhatItDidNotWrite) {
    auto body = serialize_listing(odd_listing(), {});
    // Every shorter prefix is refused (the count says how many entries follow).
    for (std::size_t n = 0; n < body.size(); ++n)
        EXPECT_FALSE(parse_listing(body.substr(0, n), {})) << "a prefix of " << n << " bytes";
    EXPECT_FALSE(parse_listing(body + "x", {}));

    factory::runtime::StreamLimits other;
    other.max_ratio = 10;
    auto refused = parse_listing(body, other);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("made under other reader limits"), std::string::npos)
        << refused.error();

    auto with = [](auto edit) {
        auto l = odd_listing();
        edit(l);
        return parse_listing(serialize_listing(l, {}), {});
    };
    auto dotdot = with([](LayerListing& l) { l.entries[2].path = "a/../../etc/passwd"; });
    ASSERT_FALSE(dotdot);
    EXPECT_NE(dotdot.error().find("path"), std::string::npos) << dotdot.error();
    EXPECT_FALSE(with([](LayerListing& l) { l.entries[0].path = "/abs"; }));
    EXPECT_FALSE(with([](LayerListing& l) { l.entries[0].path = ""; }));
    EXPECT_FALSE(with([](LayerListing& l) { l.entries[3].link = "../out"; })) << "hardlink target";
    EXPECT_FALSE(with([](LayerListing& l) { l.entries[1].mode = 010644; }));
    EXPECT_FALSE(with([](LayerListing& l) { l.entries[1].sha256 = std::string(64, 'A'); }));
    EXPECT_FALSE(with([](LayerListing& l) { l.entries[1].sha256 = std::string(40, 'a'); }));
    EXPECT_FALSE(with([](LayerListing& l) { l.entries[2].sha256 = std::string(64, 'a'); }))
        << "a digest on a symlink";
    auto order = with([](LayerListing& l) { l.ordinals[2] = 2; });
    ASSERT_FALSE(order);
    EXPECT_NE(order.error().find("ordinal: not after the last one"), std::string::npos)
        << order.error();

    // A type byte past the last type; a number not in its shortest form.
    auto line = body.find('\n') + 1;
    auto bad_type = body;
    bad_type[line + 1] = 4; // after the one-byte count (5): the first entry's type
    EXPECT_FALSE(parse_listing(bad_type, {}));
    auto long_count = body.substr(0, line) + std::string("\x85\x00", 2) + body.substr(line + 1);
    auto refused_count = parse_listing(long_count, {});
    ASSERT_FALSE(refused_count);
    EXPECT_NE(refused_count.error().find("shortest form"), std::string::npos)
        << refused_count.error();
}

// A copy from a stage whose tree came from listings is keyed by the listing's digests: planned
// without taking the file out of its layer (which needn't be there), taken out only when asked
// — after the blob is checked, once — and passed on to the tree the copy lands in.
TEST(TreeListing, ACopyFromAListedStageTakesItsFileOutOnlyWhenAsked) {
    factory::testing::TestDir dir;
    sh("mkdir -p " + (dir / "l/out").string() + " && printf 'built\\n' > " +
       (dir / "l/out/a").string() + " && tar -C " + (dir / "l").string() + " --sort=name -czf " +
       (dir / "l.tar.gz").string() + " out");
    auto blob = dir / "l.tar.gz";
    fs::create_directories(dir / "content");
    auto listing = Tree::list_layer_blob(blob);
    ASSERT_EQ(listing.entries.back().path, "out/a");
    EXPECT_EQ(listing.entries.back().sha256, factory::Sha256::hex("built\n"));
    int checks = 0;
    Tree built;
    built.apply_listing(std::move(listing), blob, dir / "content", {},
                        [&checks]() -> factory::Result<void> {
                            ++checks;
                            return {};
                        });

    factory::recipe::Step step;
    factory::recipe::CopyItem item;
    item.from_stage = "build";
    item.src = {"/out/a"};
    item.dest = "/app/a";
    item.where = {"recipe.toml", 3, 8};
    step.copy.push_back(item);
    factory::builder::CopyContext ctx;
    ctx.context = dir.path();
    ctx.stage_tree = [&](const std::string&) { return &built; };
    std::map<std::string, factory::builder::TreeContent> later;
    ctx.content_later = &later;
    fs::rename(blob, dir / "away");
    auto entries = factory::builder::plan_copy(step, ctx);
    ASSERT_EQ(entries.size(), 2u); // app, app/a
    const Entry& a = entries.back();
    EXPECT_EQ(a.path, "app/a");
    EXPECT_EQ(a.source, "") << "not taken out while planning";
    EXPECT_EQ(a.sha256, factory::Sha256::hex("built\n"));
    EXPECT_EQ(a.size, 6u);
    ASSERT_EQ(later.count("app/a"), 1u);
    EXPECT_EQ(later.at("app/a").tree, &built);
    EXPECT_EQ(later.at("app/a").path, "out/a");
    EXPECT_EQ(checks, 0);
    EXPECT_TRUE(fs::is_empty(dir / "content"));

    fs::rename(dir / "away", blob);
    Tree final_stage;
    final_stage.apply(entries);
    final_stage.adopt_content("app/a", built, "out/a");
    auto got = final_stage.contents({"app/a"});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(read_all(got.at("app/a")), "built\n");
    EXPECT_EQ(built.contents({"out/a"}).at("out/a"), got.at("app/a")) << "taken out once";
    EXPECT_EQ(checks, 1) << "the blob is checked before its first file is taken out";

    // Without content_later the file is taken out while planning, with the same digest.
    ctx.content_later = nullptr;
    auto eager = factory::builder::plan_copy(step, ctx);
    EXPECT_EQ(eager.back().source, got.at("app/a"));
    EXPECT_EQ(eager.back().sha256, a.sha256);
}
