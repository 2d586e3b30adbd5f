#include "cache/action_store.hpp"
#include "cache/verify.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <fstream>
#include <random>
#include <signal.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using factory::cache::ActionRecord;
using factory::cache::ActionStore;
using factory::cache::BlobStore;
using factory::cache::RefBlobs;
using factory::cache::verify;
using factory::cache::VerifyOptions;
using factory::cache::VerifyReport;
namespace fs = std::filesystem;

namespace {

struct Store {
    factory::testing::TestDir dir;
    BlobStore blobs{make()};
    ActionStore actions{dir.path(), blobs};
    std::vector<std::string> roots;
    std::vector<std::string> ref_problems;

    BlobStore make() {
        fs::create_directories(dir / "blobs/sha256");
        fs::create_directories(dir / "tmp");
        return BlobStore(dir / "blobs/sha256", dir / "tmp");
    }
    VerifyReport check(bool repair = false) {
        VerifyOptions o;
        o.repair = repair;
        o.threads = 2;
        return verify(
            dir.path(), blobs,
            [this] {
                return RefBlobs{roots, ref_problems};
            },
            o);
    }
    void record(const std::string& key, std::vector<std::string> hexes) {
        ActionRecord r;
        r.key = key;
        r.result = {{"layer", "x"}};
        r.blobs = std::move(hexes);
        actions.put(r);
    }
};

std::string key(char c) {
    return std::string(64, c);
}

void flip_byte(const fs::path& p, std::size_t at) {
    auto data = factory::read_file(p).value();
    data[at] ^= 0x20;
    ::chmod(p.c_str(), 0644);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines)
        out += l + "\n";
    return out;
}

} // namespace

TEST(CacheVerify, SoundStoreIsClean) {
    Store s;
    auto a = s.blobs.put("layer a"), m = s.blobs.put("manifest");
    s.record(key('a'), {a});
    s.roots = {m, a};
    auto r = s.check();
    EXPECT_TRUE(r.clean()) << joined(r.problems);
    EXPECT_EQ(r.blobs_checked, 2u);
    EXPECT_EQ(r.records_checked, 1u);
    EXPECT_EQ(r.roots_checked, 2u);
}

TEST(CacheVerify, DetectsAFlippedByteAndQuarantinesIt) {
    Store s;
    auto a = s.blobs.put("layer content that will rot");
    auto b = s.blobs.put("healthy");
    s.record(key('a'), {a});
    s.record(key('b'), {b});
    flip_byte(s.blobs.path(a), 3);
    auto bad_hex = factory::Sha256::hex(factory::read_file(s.blobs.path(a)).value());

    auto r = s.check();
    EXPECT_FALSE(r.clean());
    EXPECT_EQ(r.corrupt_blobs, std::vector<std::string>{a});
    EXPECT_EQ(r.bad_records, std::vector<std::string>{key('a')});
    ASSERT_EQ(r.problems.size(), 2u);
    EXPECT_EQ(r.problems[0],
              "blob sha256:" + a + " is corrupt: content hashes to sha256:" + bad_hex);
    EXPECT_EQ(r.problems[1],
              "action record " + key('a') + " names blob sha256:" + a + ", which is corrupt");
    EXPECT_TRUE(fs::exists(s.blobs.path(a))); // no repair: nothing moved

    auto fixed = s.check(true);
    EXPECT_EQ(fixed.corrupt_blobs, std::vector<std::string>{a});
    EXPECT_FALSE(fs::exists(s.blobs.path(a)));
    EXPECT_FALSE(fs::exists(s.actions.record_path(key('a'))));
    EXPECT_TRUE(fs::exists(s.actions.record_path(key('b'))));
    // The evidence is kept in quarantine/, byte for byte.
    std::vector<fs::path> q;
    for (const auto& e : fs::directory_iterator(s.dir / "quarantine"))
        q.push_back(e.path());
    ASSERT_EQ(q.size(), 1u);
    EXPECT_TRUE(q[0].filename().string().starts_with(a + "."));
    EXPECT_EQ(factory::Sha256::hex(factory::read_file(q[0]).value()), bad_hex);
    ASSERT_EQ(fixed.repairs.size(), 2u);
    EXPECT_TRUE(fixed.repairs[0].starts_with("moved blobs/sha256/" + a + " to quarantine/"));
    EXPECT_EQ(fixed.repairs[1], "removed action record " + key('a'));

    auto again = s.check();
    EXPECT_TRUE(again.clean()) << joined(again.problems);
    EXPECT_FALSE(s.actions.lookup(key('a')));
    EXPECT_TRUE(s.actions.lookup(key('b')));
}

TEST(CacheVerify, ReportsMissingRootBlobsAndRecordsNamingMissingBlobs) {
    Store s;
    auto a = s.blobs.put("a");
    s.record(key('a'), {a});
    fs::remove(s.blobs.path(a));
    s.roots = {key('f')};
    auto r = s.check(true);
    EXPECT_EQ(r.missing_root_blobs, std::vector<std::string>{key('f')});
    EXPECT_EQ(r.bad_records, std::vector<std::string>{key('a')});
    EXPECT_NE(joined(r.problems)
                  .find("blob sha256:" + key('f') +
                        ", needed by a ref, is missing: rebuild or pull that image again"),
              std::string::npos)
        << joined(r.problems);
    EXPECT_FALSE(fs::exists(s.actions.record_path(key('a'))));
    // Refs can't be repaired here: still reported, and --repair is no help.
    auto again = s.check();
    EXPECT_FALSE(again.clean());
    EXPECT_FALSE(again.repairable());
}

// One ref's missing manifest is one problem line; the blobs listed for the other refs are
// checked all the same, and the lister's own problems are reported as they are.
TEST(CacheVerify, AMissingManifestDoesNotHideTheOtherRefsBlobs) {
    Store s;
    auto present = s.blobs.put("config of the other ref");
    s.roots = {key('d'), present, key('e')};
    s.ref_problems = {"ref x:latest: manifest sha256:" + key('9') + ": not JSON"};
    auto r = s.check();
    EXPECT_EQ(r.roots_checked, 3u);
    EXPECT_EQ(r.problems,
              (std::vector<std::string>{
                  "ref x:latest: manifest sha256:" + key('9') + ": not JSON",
                  "blob sha256:" + key('d') +
                      ", needed by a ref, is missing: rebuild or pull that image again",
                  "blob sha256:" + key('e') +
                      ", needed by a ref, is missing: rebuild or pull that image again"}));
    EXPECT_FALSE(r.repairable());
}

TEST(CacheVerify, ACorruptBlobIsRepairable) {
    Store s;
    auto a = s.blobs.put("a");
    flip_byte(s.blobs.path(a), 0);
    auto r = s.check();
    EXPECT_FALSE(r.clean());
    EXPECT_TRUE(r.repairable());
}

TEST(CacheVerify, RootsThatCannotBeListedAreAProblemNotACrash) {
    Store s;
    auto r = verify(s.dir.path(), s.blobs,
                    []() -> RefBlobs { throw factory::Error("index.json is not JSON"); });
    ASSERT_EQ(r.problems.size(), 1u);
    EXPECT_EQ(r.problems[0], "cannot list the blobs the refs need: index.json is not JSON");
}

TEST(CacheVerify, StrangeFilesInTheStoreDoNotCrashIt) {
    Store s;
    auto a = s.blobs.put("a");
    // Empty files, a directory and a symlink under blob names, a stray name, an empty record.
    std::ofstream(s.blobs.path(key('1')));
    fs::create_directory(s.blobs.path(key('2')));
    fs::create_symlink(s.blobs.path(a), s.blobs.path(key('3')));
    std::ofstream(s.dir / "blobs/sha256/README");
    fs::create_directories(s.dir / ("actions/" + key('c').substr(0, 2)));
    std::ofstream(s.actions.record_path(key('c')));
    fs::create_directories(s.dir / "actions/zz/nested");

    auto r = s.check();
    EXPECT_FALSE(r.clean());
    EXPECT_EQ(r.corrupt_blobs.size(), 4u) << joined(r.problems);
    EXPECT_EQ(r.bad_records, std::vector<std::string>{key('c')});
    auto fixed = s.check(true);
    EXPECT_EQ(fixed.problems.size(), r.problems.size());
    auto again = s.check();
    EXPECT_TRUE(again.clean()) << joined(again.problems);
    EXPECT_TRUE(s.blobs.has(a));
}

TEST(CacheVerify, LeftoversOfAKilledWriterAreNotProblems) {
    Store s;
    auto a = s.blobs.put("a");
    s.record(key('a'), {a});
    auto me = std::to_string(::getpid());
    std::ofstream(s.dir / ("tmp/.tmp-blob-999999999-1-0badf00d")) << "partial";
    std::ofstream(s.dir / ("tmp/.tmp-layer-" + me + "-1-0badf00d"));
    // An inputs file whose record was never written.
    std::ofstream(s.actions.inputs_path(key('b')).parent_path() / (key('b') + ".inputs"))
        << "factory-inputs 1\n";
    auto r = s.check();
    EXPECT_TRUE(r.clean()) << joined(r.problems);
    EXPECT_EQ(r.stale_temps, 1u); // the one whose pid can't exist
    EXPECT_EQ(r.stale_temp_bytes, 7u);
    auto fixed = s.check(true);
    EXPECT_TRUE(fixed.clean());
    EXPECT_FALSE(fs::exists(s.dir / "tmp/.tmp-blob-999999999-1-0badf00d"));
    EXPECT_FALSE(fs::exists(s.actions.inputs_path(key('b'))));
    EXPECT_TRUE(fs::exists(s.dir / ("tmp/.tmp-layer-" + me + "-1-0badf00d")));
}

// A writer killed with SIGKILL at arbitrary moments leaves a store that verifies clean.
TEST(CacheVerify, SigkillAtAnyMomentLeavesAConsistentStore) {
    Store s;
    std::mt19937 rng(42);
    for (int round = 0; round < 8; ++round) {
        pid_t pid = ::fork();
        if (pid == 0) {
            BlobStore blobs(s.dir / "blobs/sha256", s.dir / "tmp");
            ActionStore actions(s.dir.path(), blobs);
            for (int i = 0;; ++i) {
                auto content =
                    std::to_string(round) + "-" + std::to_string(i) + std::string(5000, 'x');
                auto w = blobs.writer();
                w.write(content);
                auto hex = w.commit();
                ActionRecord r;
                r.key = factory::Sha256::hex("key " + content);
                r.step_id = std::string(64, 'e');
                r.result = {{"blob", hex}};
                r.blobs = {hex};
                r.inputs = {{"f" + std::to_string(i), "file", false, hex, "", ""}};
                actions.put(r);
                actions.set_last_for_step(r.step_id, r.key);
            }
        }
        // Let the writer make progress (one more record), then kill it at a random moment.
        auto records_before = s.actions.list().size();
        for (int i = 0; i < 2000 && s.actions.list().size() <= records_before; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
        ::kill(pid, SIGKILL);
        int status;
        ::waitpid(pid, &status, 0);
        auto r = s.check();
        ASSERT_TRUE(r.clean()) << "round " << round << ":\n" << joined(r.problems);
        EXPECT_GT(r.records_checked, 0u);
        // Everything the records name can be used.
        for (const auto& f : s.actions.list())
            EXPECT_TRUE(s.actions.lookup(f.key)) << f.key;
    }
    auto fixed = s.check(true);
    EXPECT_TRUE(fixed.clean());
    // Temps named with a dead pid are gone after repair.
    for (const auto& e : fs::directory_iterator(s.dir / "tmp"))
        ADD_FAILURE() << e.path();
}
