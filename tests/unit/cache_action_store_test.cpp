#include "cache/action_store.hpp"
#include "factory/util/files.hpp"
#include "tests/unit/test_dir.hpp"

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>

using factory::cache::ActionRecord;
using factory::cache::ActionStore;
using factory::cache::BlobStore;
using factory::cache::InputFile;
using factory::cache::WithInputs;
namespace fs = std::filesystem;

namespace {

struct Store {
    factory::testing::TestDir dir;
    BlobStore blobs{make()};
    ActionStore actions{dir.path(), blobs};
    BlobStore make() {
        fs::create_directories(dir / "blobs/sha256");
        fs::create_directories(dir / "tmp");
        return BlobStore(dir / "blobs/sha256", dir / "tmp");
    }
};

std::string key(char c) {
    return std::string(64, c);
}

ActionRecord record(const std::string& k, std::vector<std::string> blobs) {
    ActionRecord r;
    r.key = k;
    r.step_id = key('5');
    r.fields = {{"format", "factory-key/1"}, {"kind", "copy"}};
    r.result = {
        {"layer", {{"digest", "sha256:" + (blobs.empty() ? key('0') : blobs[0])}, {"size", 5}}},
        {"diff_id", "sha256:" + key('d')}};
    r.blobs = std::move(blobs);
    r.created = 1700000000;
    return r;
}

std::int64_t mtime_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mtim.tv_sec;
}

void set_mtime(const fs::path& p, std::int64_t seconds) {
    struct timespec t[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), t, 0), 0);
}

} // namespace

TEST(ActionStore, PutThenLookupGivesTheRecordBack) {
    Store s;
    auto hex = s.blobs.put("layer bytes");
    auto r = record(key('a'), {hex});
    r.inputs = {{"app/a.txt", "file", false, key('1'), "", ""},
                {"app/run", "file", true, key('2'), "", "0:0:0755"}};
    s.actions.put(r);

    EXPECT_TRUE(fs::exists(s.dir / ("actions/aa/" + key('a') + ".json")));
    EXPECT_TRUE(fs::exists(s.dir / ("actions/aa/" + key('a') + ".inputs")));
    auto got = s.actions.lookup(key('a'));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->key, key('a'));
    EXPECT_EQ(got->step_id, key('5'));
    EXPECT_EQ(got->fields, r.fields);
    EXPECT_EQ(got->result, r.result);
    EXPECT_EQ(got->blobs, std::vector<std::string>{hex});
    EXPECT_EQ(got->created, 1700000000);
    EXPECT_EQ(got->input_count, 2u);
    EXPECT_TRUE(got->inputs.empty()); // not loaded on the hot path

    auto full = s.actions.read(key('a'), WithInputs::yes);
    ASSERT_TRUE(full) << full.error();
    EXPECT_EQ(full->inputs, r.inputs);
}

TEST(ActionStore, MissingKeyIsAMiss) {
    Store s;
    EXPECT_FALSE(s.actions.lookup(key('b')));
    EXPECT_THROW(s.actions.lookup("../../etc/passwd"), factory::Error);
}

TEST(ActionStore, PutRefusesARecordNamingAMissingBlob) {
    Store s;
    try {
        s.actions.put(record(key('a'), {key('f')}));
        FAIL() << "put accepted a record naming a missing blob";
    } catch (const factory::Error& e) {
        EXPECT_NE(std::string(e.what()).find("blob sha256:" + key('f') + " is not in the store"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(fs::exists(s.actions.record_path(key('a'))));
}

TEST(ActionStore, RecordWhoseBlobIsGoneIsNotReturned) {
    Store s;
    auto hex = s.blobs.put("layer bytes");
    s.actions.put(record(key('a'), {hex}));
    ASSERT_TRUE(s.actions.lookup(key('a')));
    fs::remove(s.blobs.path(hex));
    EXPECT_FALSE(s.actions.lookup(key('a')));
}

TEST(ActionStore, UnparsableRecordIsAMissAndIsRemoved) {
    Store s;
    auto hex = s.blobs.put("x");
    s.actions.put(record(key('a'), {hex}));
    auto path = s.actions.record_path(key('a'));
    auto text = factory::read_file(path).value();
    std::ofstream(path, std::ios::trunc) << text.substr(0, text.size() / 2); // cut short
    EXPECT_FALSE(s.actions.lookup(key('a')));
    EXPECT_FALSE(fs::exists(path));

    // A record copied under another key's name is not that key's record.
    s.actions.put(record(key('b'), {hex}));
    fs::create_directories(s.actions.record_path(key('c')).parent_path());
    fs::copy_file(s.actions.record_path(key('b')), s.actions.record_path(key('c')));
    EXPECT_FALSE(s.actions.lookup(key('c')));
    EXPECT_TRUE(s.actions.lookup(key('b')));

    // Empty file (as outside hands could leave).
    std::ofstream(s.actions.record_path(key('b')), std::ios::trunc);
    EXPECT_FALSE(s.actions.lookup(key('b')));
}

TEST(ActionStore, LookupBumpsLastUse) {
    Store s;
    auto hex = s.blobs.put("x");
    s.actions.put(record(key('a'), {hex}));
    auto path = s.actions.record_path(key('a'));
    set_mtime(path, 1000);
    ASSERT_EQ(mtime_of(path), 1000);
    ASSERT_TRUE(s.actions.lookup(key('a')));
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    EXPECT_GE(mtime_of(path), now - 5);
    // read() does not count as a use.
    set_mtime(path, 1000);
    ASSERT_TRUE(s.actions.read(key('a')));
    EXPECT_EQ(mtime_of(path), 1000);
}

TEST(ActionStore, LastForStepFollowsThePointerAndLoadsInputs) {
    Store s;
    auto hex = s.blobs.put("x");
    auto r = record(key('a'), {hex});
    // Inputs with every byte the line format must escape, and invalid UTF-8.
    r.inputs = {{"dir/tab\there", "file", false, key('1'), "", ""},
                {"new\nline\\back", "symlink", false, "", "target\\t", ""},
                {std::string("bad\xff\xfe utf8"), "file", true, key('2'), "", "1000:1000:0600"}};
    s.actions.put(r);
    EXPECT_FALSE(s.actions.last_for_step(key('5')));
    s.actions.set_last_for_step(key('5'), key('a'));
    EXPECT_EQ(factory::read_file(s.dir / ("steps/55/" + key('5'))).value(), key('a') + "\n");
    auto last = s.actions.last_for_step(key('5'));
    ASSERT_TRUE(last);
    EXPECT_EQ(last->key, key('a'));
    EXPECT_EQ(last->inputs, r.inputs);
    // Its blob going away does not hide it from `why`.
    fs::remove(s.blobs.path(hex));
    EXPECT_TRUE(s.actions.last_for_step(key('5')));
    s.actions.remove(key('a'));
    EXPECT_FALSE(s.actions.last_for_step(key('5')));
}

TEST(ActionStore, InputsTextRoundTripsAndRejectsGarbage) {
    std::vector<InputFile> in = {{"a\\b\tc\nd", "file", true, key('1'), "l\tk", "0:0:0644"}};
    auto text = factory::cache::inputs_to_text(in);
    EXPECT_EQ(text,
              "factory-inputs 1\na\\\\b\\tc\\nd\tfile\t1\t" + key('1') + "\tl\\tk\t0:0:0644\n");
    EXPECT_EQ(factory::cache::inputs_from_text(text).value(), in);
    EXPECT_FALSE(factory::cache::inputs_from_text("factory-inputs 1\na\tb\n"));
    EXPECT_FALSE(factory::cache::inputs_from_text("factory-inputs 1\na\tfile\t2\t\t\t\n"));
    EXPECT_FALSE(factory::cache::inputs_from_text(text.substr(0, text.size() - 1))); // cut short
    EXPECT_FALSE(factory::cache::inputs_from_text(""));
}

TEST(ActionStore, ManyInputsLoadQuickly) {
    Store s;
    auto hex = s.blobs.put("x");
    auto r = record(key('a'), {hex});
    for (int i = 0; i < 20000; ++i)
        r.inputs.push_back(
            {"src/module" + std::to_string(i % 100) + "/file" + std::to_string(i) + ".cpp", "file",
             false, key('1'), "", ""});
    s.actions.put(r);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(s.actions.lookup(key('a')));
    auto t1 = std::chrono::steady_clock::now();
    auto full = s.actions.read(key('a'), WithInputs::yes);
    auto t2 = std::chrono::steady_clock::now();
    ASSERT_TRUE(full);
    EXPECT_EQ(full->inputs, r.inputs);
    auto ms = [](auto d) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    std::printf("lookup %lld ms, read with 20000 inputs %lld ms, record %llu bytes\n",
                static_cast<long long>(ms(t1 - t0)), static_cast<long long>(ms(t2 - t1)),
                static_cast<unsigned long long>(fs::file_size(s.actions.record_path(key('a')))));
    // The hot path reads only the small record.
    EXPECT_LT(fs::file_size(s.actions.record_path(key('a'))), 1024u);
}

TEST(ActionStore, ListFindsRecordsAndRemoveDeletesBothFiles) {
    Store s;
    auto hex = s.blobs.put("x");
    auto r = record(key('a'), {hex});
    r.inputs = {{"f", "file", false, key('1'), "", ""}};
    s.actions.put(r);
    s.actions.put(record(key('b'), {hex}));
    fs::create_directories(s.dir / "actions/zz");
    std::ofstream(s.dir / "actions/zz/junk.json") << "{}";
    auto list = s.actions.list();
    std::vector<std::string> keys;
    for (const auto& f : list)
        keys.push_back(f.key);
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, (std::vector<std::string>{key('a'), key('b')}));
    s.actions.remove(key('a'));
    EXPECT_FALSE(fs::exists(s.actions.record_path(key('a'))));
    EXPECT_FALSE(fs::exists(s.actions.inputs_path(key('a'))));
    EXPECT_NO_THROW(s.actions.remove(key('a')));
}
