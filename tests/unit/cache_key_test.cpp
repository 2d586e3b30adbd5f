#include "cache/key.hpp"
#include "factory/util/sha256.hpp"

#include <algorithm>
#include <cstdint>
#include <gtest/gtest.h>
#include <string>

using factory::Sha256;
using factory::cache::diff_fields;
using factory::cache::diff_inputs;
using factory::cache::InputFile;
using factory::cache::KeyBuilder;
using factory::cache::merkle_digest;

namespace {

std::string le(std::uint64_t v, int bytes) {
    std::string out;
    for (int i = 0; i < bytes; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
}

// The grammar of docs/cache.md, spelled out independently of key.cpp.
std::string field(std::string_view tag, std::string_view value) {
    return le(tag.size(), 4) + std::string(tag) + le(value.size(), 8) + std::string(value);
}

std::string key_of(std::initializer_list<std::pair<std::string, std::string>> fields) {
    KeyBuilder k;
    for (const auto& [t, v] : fields)
        k.add(t, v);
    return k.hex();
}

InputFile file(std::string path, std::string sha = std::string(64, 'a')) {
    return {std::move(path), "file", false, std::move(sha), "", ""};
}

} // namespace

TEST(CacheKey, FramingSeparatesTagAndValueBoundaries) {
    EXPECT_NE(key_of({{"ab", "c"}}), key_of({{"a", "bc"}}));
    EXPECT_NE(key_of({{"a", "b"}, {"c", "d"}}), key_of({{"a", "bcd"}}));
    EXPECT_NE(key_of({{"a", ""}, {"b", ""}}), key_of({{"a", std::string("\x01\0\0\0b", 5)}}));
    EXPECT_NE(key_of({{"a", "b"}}), key_of({{"b", "a"}}));
    // Needs the tag's own length: without it, "a" + u64(0) + "b" + u64(0) reads as one tag.
    EXPECT_NE(key_of({{"a", ""}, {"b", ""}}),
              key_of({{std::string("a\0\0\0\0\0\0\0\0b", 10), ""}}));
    // Needs the value's length: without it, the value "b" + the next field's bytes read as one.
    EXPECT_NE(key_of({{"a", "b"}, {"c", ""}}), key_of({{"a", std::string("b\x01\0\0\0c", 6)}}));
    EXPECT_NE(key_of({}), key_of({{"", ""}}));
    // Same fields, same key.
    EXPECT_EQ(key_of({{"kind", "copy"}, {"epoch", "0"}}),
              key_of({{"kind", "copy"}, {"epoch", "0"}}));
}

TEST(CacheKey, BytesFollowTheDocumentedGrammar) {
    KeyBuilder k;
    k.add("kind", "run").add("epoch", std::int64_t{-5});
    auto expected =
        Sha256::hex(field("format", "factory-key/4") + field("kind", "run") + field("epoch", "-5"));
    EXPECT_EQ(k.hex(), expected);
    // Pinned: changing the framing must be a deliberate format bump.
    EXPECT_EQ(KeyBuilder().hex(), Sha256::hex(field("format", "factory-key/4")));
}

TEST(CacheKey, FieldsStartWithTheFormatAndElideLongValues) {
    std::string long1(300, 'x'), long2(300, 'x');
    long2.back() = 'y';
    KeyBuilder a, b;
    a.add("run", long1);
    b.add("run", long2);
    EXPECT_NE(a.hex(), b.hex()); // the key hashes the whole value
    ASSERT_EQ(a.fields().size(), 2u);
    EXPECT_EQ(a.fields()[0], (std::pair<std::string, std::string>{"format", "factory-key/4"}));
    EXPECT_EQ(a.fields()[1].first, "run");
    EXPECT_EQ(a.fields()[1].second, "sha256:" + Sha256::hex(long1) + " (300 bytes)");
    KeyBuilder c;
    c.add("run", std::string(200, 'z')); // at the limit: kept as is
    EXPECT_EQ(c.fields()[1].second, std::string(200, 'z'));
}

TEST(CacheKey, MerkleDigestIgnoresOrderButNotAnyAttribute) {
    std::vector<InputFile> a = {file("b"), file("a"), {"c", "symlink", false, "", "a", ""}};
    std::vector<InputFile> b = {a[2], a[0], a[1]};
    EXPECT_EQ(merkle_digest(a), merkle_digest(b));

    auto changed = [&](auto mutate) {
        auto copy = a;
        mutate(copy[0]);
        return merkle_digest(copy);
    };
    auto base = merkle_digest(a);
    EXPECT_NE(base, changed([](InputFile& f) { f.path = "bb"; }));
    EXPECT_NE(base, changed([](InputFile& f) { f.type = "dir"; }));
    EXPECT_NE(base, changed([](InputFile& f) { f.exec = true; }));
    EXPECT_NE(base, changed([](InputFile& f) { f.sha256 = std::string(64, 'b'); }));
    EXPECT_NE(base, changed([](InputFile& f) { f.link = "x"; }));
    EXPECT_NE(base, changed([](InputFile& f) { f.owner_mode = "0:0:0644"; }));
    // Field boundaries are framed: moving a byte from the path into the type changes the digest.
    EXPECT_NE(merkle_digest({{"ab", "", false, "", "", ""}}),
              merkle_digest({{"a", "b", false, "", "", ""}}));
    EXPECT_NE(merkle_digest({}), merkle_digest({{"", "", false, "", "", ""}}));
}

TEST(CacheKey, DiffFieldsMatchesByTagAndOccurrence) {
    factory::cache::Fields before = {
        {"format", "1"}, {"env", "A=1"}, {"env", "B=2"}, {"user", "0"}};
    factory::cache::Fields after = {
        {"format", "1"}, {"env", "A=1"}, {"env", "B=3"}, {"workdir", "/"}};
    auto changes = diff_fields(before, after);
    ASSERT_EQ(changes.size(), 3u);
    EXPECT_EQ(changes[0].tag, "env");
    EXPECT_EQ(changes[0].before, "B=2");
    EXPECT_EQ(changes[0].after, "B=3");
    EXPECT_EQ(changes[1].tag, "workdir");
    EXPECT_FALSE(changes[1].before);
    EXPECT_EQ(changes[1].after, "/");
    EXPECT_EQ(changes[2].tag, "user");
    EXPECT_EQ(changes[2].before, "0");
    EXPECT_FALSE(changes[2].after);
    EXPECT_TRUE(diff_fields(before, before).empty());
}

TEST(CacheKey, DiffInputsNamesAddedRemovedChanged) {
    std::vector<InputFile> before = {file("keep"), file("gone"), file("edit")};
    std::vector<InputFile> after = {file("keep"), file("edit", std::string(64, 'b')), file("new")};
    auto d = diff_inputs(before, after);
    EXPECT_EQ(d.added, std::vector<std::string>{"new"});
    EXPECT_EQ(d.removed, std::vector<std::string>{"gone"});
    EXPECT_EQ(d.changed, std::vector<std::string>{"edit"});
    EXPECT_TRUE(diff_inputs(before, before).empty());
}
