// sources/git_mirror: real repositories made by the test (local paths and file:// URLs; the
// network protocols are in tests/integration/git.sh): a ref resolved to its commit, the mirror
// fetched only when the commit moved, tags and commit ids, offline resolution, a commit's tree
// as entries (modes, symlinks, submodules) that give the same layer from two stores, a working
// clone, and credentials kept out of errors and the mirror's config.
#include "factory/sources/git_mirror.hpp"
#include "factory/layer/content_source.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "tests/unit/test_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

namespace fs = std::filesystem;
using namespace factory;
using namespace factory::sources;

namespace {

std::string sh(const std::string& command) {
    std::string full = "set -e; export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null "
                       "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t "
                       "GIT_COMMITTER_EMAIL=t@example.com GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' "
                       "GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'; " +
                       command;
    std::string out;
    FILE* p = ::popen(("bash -c '" +
                       [&] {
                           std::string q;
                           for (char c : full)
                               q += c == '\'' ? std::string("'\\''") : std::string(1, c);
                           return q;
                       }() +
                       "'")
                          .c_str(),
                      "r");
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    int status = ::pclose(p);
    EXPECT_EQ(status, 0) << command << "\n" << out;
    while (!out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

struct Fixture {
    factory::testing::TestDir dir;
    fs::path repo = dir / "upstream";
    std::vector<std::string> log;

    Fixture() {
        sh("git init -q -b main " + repo.string() + " && cd " + repo.string() +
           " && echo hello > a.txt && printf '#!/bin/sh\\n' > run.sh && chmod 755 run.sh && "
           "mkdir -p d/e && echo deep > d/e/f && ln -s a.txt link && git add -A && "
           "git commit -q -m one && git tag -a v1 -m v1 && git tag light");
    }
    GitMirrors mirrors(const fs::path& store, bool offline = false) {
        GitOptions o;
        o.offline = offline;
        o.attempts = 1;
        o.on_log = [this](std::string_view l) { log.emplace_back(l); };
        return GitMirrors(store, o);
    }
    std::string head() { return sh("git -C " + repo.string() + " rev-parse HEAD"); }
    void commit(const std::string& file) {
        sh("cd " + repo.string() + " && echo " + file + " > " + file +
           " && git add -A && "
           "git commit -q -m " +
           file);
    }
    int fetches() const {
        int n = 0;
        for (const auto& l : log)
            n +=
                l.find("fetching") != std::string::npos || l.find("mirroring") != std::string::npos;
        return n;
    }
};

std::map<std::string, layer::Entry> by_path(const std::vector<layer::Entry>& entries) {
    std::map<std::string, layer::Entry> out;
    for (const auto& e : entries)
        out[e.path] = e;
    return out;
}

Result<std::string> try_layer_digest(std::vector<layer::Entry> entries, const fs::path& out,
                                     layer::ContentSource* content = nullptr,
                                     layer::Compression compression = layer::Compression::none) {
    Fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    layer::LayerOptions o;
    o.compression = compression;
    o.content = content;
    auto info = layer::write_layer(std::move(entries), o, fd.get());
    if (!info) return Unexpected(info.error());
    return info->digest;
}

std::string layer_digest(std::vector<layer::Entry> entries, const fs::path& out,
                         layer::ContentSource* content = nullptr,
                         layer::Compression compression = layer::Compression::none) {
    auto digest = try_layer_digest(std::move(entries), out, content, compression);
    EXPECT_TRUE(digest) << (digest ? "" : digest.error());
    return digest ? *digest : "";
}

} // namespace

TEST(GitMirror, ResolvesABranchAndFetchesOnlyWhenItMoved) {
    Fixture f;
    auto store = f.dir / "store";
    auto m = f.mirrors(store);
    auto r = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->commit, f.head());
    EXPECT_EQ(r->name, "refs/heads/main");
    EXPECT_EQ(r->mirror, store / "git" / (Sha256::hex(f.repo.string()) + ".git"));
    EXPECT_TRUE(fs::exists(r->mirror / "HEAD"));
    EXPECT_EQ(f.fetches(), 1);

    // Unmoved: the ls-remote only.
    auto again = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(again) << again.error();
    EXPECT_EQ(again->commit, r->commit);
    EXPECT_EQ(f.fetches(), 1);

    f.commit("b.txt");
    auto moved = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(moved) << moved.error();
    EXPECT_EQ(moved->commit, f.head());
    EXPECT_NE(moved->commit, r->commit);
    EXPECT_EQ(f.fetches(), 2);
}

// A ref the mirror has not seen is fetched at depth 1; after that only the new commits come,
// and the history behind them when it is asked for.
TEST(GitMirror, ARefComesAtItsTipThenItsNewCommits) {
    Fixture f;
    f.commit("b.txt");
    f.commit("c.txt");
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    auto git = "git -C " + r->mirror.string() + " ";
    EXPECT_EQ(sh(git + "rev-list --count refs/heads/main"), "1");
    EXPECT_EQ(sh(git + "rev-parse --is-shallow-repository"), "true");

    f.commit("d.txt");
    auto moved = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(moved) << moved.error();
    EXPECT_EQ(moved->commit, f.head());
    EXPECT_EQ(sh(git + "rev-parse refs/heads/main"), f.head());
    EXPECT_EQ(sh(git + "rev-list --count refs/heads/main"), "2"); // d, down to the tip it had

    auto full = m.resolve(f.repo.string(), "main", true);
    ASSERT_TRUE(full) << full.error();
    EXPECT_EQ(sh(git + "rev-list --count refs/heads/main"), "4");
    EXPECT_EQ(sh(git + "rev-parse --is-shallow-repository"), "false");
    EXPECT_EQ(f.fetches(), 3);
    // Complete now: asking for the history again fetches nothing.
    ASSERT_TRUE(m.resolve(f.repo.string(), "main", true));
    EXPECT_EQ(f.fetches(), 3);
}

// The commit a key named, fetched by the ref it came from: the mirror keeps the ref, so the
// next commit of it is an incremental fetch. The remote's HEAD resolves offline afterwards.
TEST(GitMirror, FetchCommitKeepsTheRefItCameFrom) {
    Fixture f;
    f.commit("b.txt");
    auto store = f.dir / "store";
    auto m = f.mirrors(store);
    auto r = m.fetch_commit(f.repo.string(), f.head(), "refs/heads/main");
    ASSERT_TRUE(r) << r.error();
    auto git = "git -C " + r->mirror.string() + " ";
    EXPECT_EQ(sh(git + "rev-parse refs/heads/main"), f.head());
    f.commit("c.txt");
    ASSERT_TRUE(m.fetch_commit(f.repo.string(), f.head(), "refs/heads/main"));
    EXPECT_EQ(sh(git + "rev-list --count refs/heads/main"), "2");

    auto head = m.resolve(f.repo.string(), "HEAD");
    ASSERT_TRUE(head) << head.error();
    EXPECT_EQ(head->commit, f.head());
    auto offline = f.mirrors(store, true).resolve(f.repo.string(), "HEAD");
    ASSERT_TRUE(offline) << offline.error();
    EXPECT_EQ(offline->commit, f.head());
    // A pinned, older commit fetched by HEAD on a fresh store: offline, HEAD is still the
    // newest the remote showed, not the pin.
    std::string pinned = f.head();
    f.commit("d.txt");
    auto fresh = f.dir / "fresh";
    ASSERT_TRUE(f.mirrors(fresh).fetch_commit(f.repo.string(), pinned, "HEAD"));
    auto newest = f.mirrors(fresh, true).resolve(f.repo.string(), "HEAD");
    ASSERT_TRUE(newest) << newest.error();
    EXPECT_EQ(newest->commit, f.head());

    auto bad = m.fetch_commit(f.repo.string(), "main", "");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), "'main' is not a commit id (40 hex digits)");
}

TEST(GitMirror, ConcurrentBuildsMirrorOnce) {
    Fixture f;
    auto store = f.dir / "store";
    std::vector<std::string> logs[4];
    std::string commits[4];
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&, i] {
            GitOptions o;
            o.attempts = 1;
            o.on_log = [&logs, i](std::string_view l) { logs[i].emplace_back(l); };
            auto r = GitMirrors(store, o).resolve("file://" + f.repo.string(), "main");
            commits[i] = r ? r->commit : r.error();
        });
    for (auto& t : threads)
        t.join();
    int clones = 0;
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(commits[i], f.head());
        for (const auto& l : logs[i])
            clones += l.find("mirroring") != std::string::npos;
    }
    EXPECT_EQ(clones, 1); // the others waited on the mirror's lock and found the commit
}

TEST(GitMirror, TagsAndCommitIds) {
    Fixture f;
    std::string first = f.head();
    f.commit("b.txt");
    auto m = f.mirrors(f.dir / "store");
    auto annotated = m.resolve(f.repo.string(), "v1");
    ASSERT_TRUE(annotated) << annotated.error();
    EXPECT_EQ(annotated->commit, first); // peeled: the commit, not the tag object
    EXPECT_EQ(annotated->name, "refs/tags/v1");
    auto light = m.resolve(f.repo.string(), "light");
    ASSERT_TRUE(light) << light.error();
    EXPECT_EQ(light->commit, first);
    auto id = m.resolve(f.repo.string(), first);
    ASSERT_TRUE(id) << id.error();
    EXPECT_EQ(id->commit, first);
    EXPECT_EQ(id->name, "");
}

TEST(GitMirror, ErrorsNameTheRefAndTheUrl) {
    Fixture f;
    auto m = f.mirrors(f.dir / "store");
    auto missing = m.resolve(f.repo.string(), "nope");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), "ref 'nope' not found in " + f.repo.string());
    auto bad = m.resolve(f.repo.string(), "--upload-pack=touch /tmp/x");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), "invalid ref '--upload-pack=touch /tmp/x' for " + f.repo.string());
    auto unknown = m.resolve(f.repo.string(), std::string(40, 'a'));
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error(),
              "commit " + std::string(40, 'a') + " not found in " + f.repo.string());
}

TEST(GitMirror, OfflineUsesTheMirrorOnly) {
    Fixture f;
    auto store = f.dir / "store";
    auto none = f.mirrors(store, true).resolve(f.repo.string(), "main");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error(), "offline: no mirror of " + f.repo.string() + " in the store");
    ASSERT_TRUE(f.mirrors(store).resolve(f.repo.string(), "main"));
    std::string mirrored = f.head();
    f.commit("b.txt");
    auto off = f.mirrors(store, true);
    auto r = off.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->commit, mirrored); // the mirror's, not upstream's
    EXPECT_EQ(f.fetches(), 1);
    auto moved = off.resolve(f.repo.string(), f.head());
    ASSERT_FALSE(moved);
    EXPECT_EQ(moved.error(),
              "offline: commit " + f.head() + " of " + f.repo.string() + " is not in the store");
}

TEST(GitMirror, TreeEntriesKeepModesAndSymlinks) {
    Fixture f;
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    fs::create_directories(f.dir / "content");
    auto tree = m.tree_entries(*r, {"/src/app/", false, f.dir / "content"});
    ASSERT_TRUE(tree) << tree.error();
    auto e = by_path(tree->entries);
    ASSERT_TRUE(e.contains("src/app/a.txt"));
    EXPECT_EQ(e["src/app/a.txt"].mode, 0644u);
    EXPECT_EQ(read_file(e["src/app/a.txt"].source).value(), "hello\n");
    EXPECT_EQ(e["src/app/run.sh"].mode, 0755u);
    EXPECT_EQ(e["src/app/link"].type, layer::Entry::Type::symlink);
    EXPECT_EQ(e["src/app/link"].link, "a.txt");
    for (const char* d : {"src", "src/app", "src/app/d", "src/app/d/e"}) {
        ASSERT_TRUE(e.contains(d)) << d;
        EXPECT_EQ(e[d].type, layer::Entry::Type::dir);
        EXPECT_EQ(e[d].mode, 0755u);
    }
    EXPECT_EQ(tree->files, 3u);
    EXPECT_EQ(e.size(), 8u);
}

TEST(GitMirror, TheSameCommitGivesTheSameLayerFromTwoStores) {
    Fixture f;
    std::string digests[2];
    for (int i = 0; i < 2; ++i) {
        auto store = f.dir / ("store" + std::to_string(i));
        auto m = f.mirrors(store);
        auto r = m.resolve("file://" + f.repo.string(), "v1");
        ASSERT_TRUE(r) << r.error();
        fs::create_directories(store / "content");
        auto tree = m.tree_entries(*r, {"src", false, store / "content"});
        ASSERT_TRUE(tree) << tree.error();
        digests[i] = layer_digest(tree->entries, store / "layer.tar");
        if (i == 0) ::umask(077); // the second store under another umask
    }
    ::umask(022);
    EXPECT_EQ(digests[0], digests[1]);
    EXPECT_FALSE(digests[0].empty());
}

TEST(GitMirror, SubmodulesArePinnedAtTheirCommits) {
    Fixture f;
    auto sub = f.dir / "sub";
    sh("git init -q -b main " + sub.string() + " && cd " + sub.string() +
       " && echo inner > inner.txt && git add -A && git commit -q -m s");
    std::string pinned = sh("git -C " + sub.string() + " rev-parse HEAD");
    sh("cd " + f.repo.string() + " && git -c protocol.file.allow=always submodule add -q " +
       sub.string() + " lib/sub && git commit -q -m sub");
    // Upstream of the submodule moves on; the superproject still pins the first commit.
    sh("cd " + sub.string() + " && echo later > inner.txt && git commit -q -am later");
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    fs::create_directories(f.dir / "content");
    auto with = m.tree_entries(*r, {"", true, f.dir / "content"});
    ASSERT_TRUE(with) << with.error();
    auto e = by_path(with->entries);
    ASSERT_TRUE(e.contains("lib/sub/inner.txt"));
    EXPECT_EQ(read_file(e["lib/sub/inner.txt"].source).value(), "inner\n");
    ASSERT_EQ(with->submodules.size(), 1u);
    EXPECT_EQ(with->submodules[0].commit, pinned);
    EXPECT_EQ(with->submodules[0].path, "lib/sub");

    auto without = m.tree_entries(*r, {"", false, f.dir / "content"});
    ASSERT_TRUE(without) << without.error();
    auto w = by_path(without->entries);
    EXPECT_FALSE(w.contains("lib/sub/inner.txt"));
    ASSERT_TRUE(w.contains("lib/sub"));
    EXPECT_EQ(w["lib/sub"].type, layer::Entry::Type::dir);
}

// Blobs streamed from cat-file while the layer is written give the layer that extracting them
// to files first gives (gzip: many blocks, two threads), submodules included, and stay behind
// as files, so the next tree of the commit needs no stream at all.
TEST(GitMirror, StreamedBlobsGiveTheSameLayerAndStayKept) {
    Fixture f;
    auto sub = f.dir / "sub";
    sh("git init -q -b main " + sub.string() + " && cd " + sub.string() +
       " && echo inner > inner.txt && : > empty && git add -A && git commit -q -m s");
    sh("cd " + f.repo.string() + " && mkdir -p big && for i in $(seq 1 300); do head -c 20000 " +
       "/dev/urandom | base64 > big/f$i; done && cp a.txt big/same && git add -A && " +
       "git -c protocol.file.allow=always submodule add -q " + sub.string() +
       " lib/sub && git commit -q -m big");
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    fs::create_directories(f.dir / "files");
    auto extracted = m.tree_entries(*r, {"src", true, f.dir / "files"});
    ASSERT_TRUE(extracted) << extracted.error();
    EXPECT_FALSE(extracted->stream);
    auto gz = layer::Compression::gzip;
    std::string want = layer_digest(extracted->entries, f.dir / "a.tgz", nullptr, gz);

    fs::create_directories(f.dir / "streamed");
    auto streamed = m.tree_entries(*r, {"src", true, f.dir / "streamed", true});
    ASSERT_TRUE(streamed) << streamed.error();
    ASSERT_TRUE(streamed->stream);
    EXPECT_FALSE(fs::exists(f.dir / "streamed" /
                            sh("git -C " + f.repo.string() + " rev-parse HEAD:big/f1")));
    EXPECT_EQ(layer_digest(streamed->entries, f.dir / "b.tgz", streamed->stream.get(), gz), want);
    streamed->stream.reset();
    std::size_t kept = 0;
    for (const auto& e : fs::directory_iterator(f.dir / "streamed")) {
        EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
        ++kept;
    }
    // big/f*, a.txt (also big/same), run.sh, d/e/f, the link's target, .gitmodules, inner.txt,
    // empty
    EXPECT_EQ(kept, 307u);

    auto again = m.tree_entries(*r, {"src", true, f.dir / "streamed", true});
    ASSERT_TRUE(again) << again.error();
    EXPECT_FALSE(again->stream);
    EXPECT_EQ(layer_digest(again->entries, f.dir / "c.tgz", nullptr, gz), want);
}

// A blob the mirror lost is an error of the layer, naming git's complaint and the URL.
TEST(GitMirror, AStreamedBlobMissingFromTheMirrorIsAnError) {
    Fixture f;
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    fs::create_directories(f.dir / "content");
    auto tree = m.tree_entries(*r, {"", false, f.dir / "content", true});
    ASSERT_TRUE(tree) << tree.error();
    ASSERT_TRUE(tree->stream);
    // Every object gone: the packs and the loose objects.
    fs::remove_all(r->mirror / "objects");
    fs::create_directories(r->mirror / "objects");
    auto digest = try_layer_digest(tree->entries, f.dir / "l.tar", tree->stream.get());
    ASSERT_FALSE(digest);
    std::string blob = sh("git -C " + f.repo.string() + " rev-parse HEAD:a.txt");
    EXPECT_EQ(digest.error(), "git cat-file: " + blob + " missing (" + f.repo.string() + ")");
}

// A blob the mirror can't read when the tree is listed: an error naming it, not a crash.
TEST(GitMirror, ABlobMissingWhenListingIsAnError) {
    Fixture f;
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve(f.repo.string(), "main");
    ASSERT_TRUE(r) << r.error();
    // The mirror's pack unpacked into loose objects, and a.txt's blob taken away.
    std::string blob = sh("git -C " + f.repo.string() + " rev-parse HEAD:a.txt");
    sh("cd " + r->mirror.string() +
       " && mv objects/pack/*.pack ../p.pack && rm -f objects/pack/* " +
       "&& git unpack-objects -q < ../p.pack");
    ASSERT_TRUE(fs::remove(r->mirror / "objects" / blob.substr(0, 2) / blob.substr(2)));
    fs::create_directories(f.dir / "content");
    auto tree = m.tree_entries(*r, {"", false, f.dir / "content", true});
    ASSERT_FALSE(tree);
    EXPECT_EQ(tree.error(), "git ls-tree: blob " + blob +
                                " of 'a.txt' cannot be read from the mirror (" + f.repo.string() +
                                ")");
}

TEST(GitMirror, WorkingCloneHoldsTheHistoryAndTracksOrigin) {
    Fixture f;
    f.commit("b.txt");
    std::string blobs[2];
    for (int i = 0; i < 2; ++i) {
        auto store = f.dir / ("store" + std::to_string(i));
        auto m = f.mirrors(store);
        // Resolved for its tree first (the tip alone), then with its history.
        ASSERT_TRUE(m.resolve(f.repo.string(), "main"));
        fs::create_directories(store / "work");
        auto shallow = m.resolve(f.repo.string(), "main");
        ASSERT_TRUE(shallow) << shallow.error();
        auto refused = m.working_clone(*shallow, "/src", store / "work");
        ASSERT_FALSE(refused);
        EXPECT_EQ(refused.error(), "the mirror of " + f.repo.string() +
                                       " holds only part of the history of " + shallow->commit +
                                       " (resolve it with its history first)");
        auto r = m.resolve(f.repo.string(), "main", true);
        ASSERT_TRUE(r) << r.error();
        fs::remove_all(store / "work");
        fs::create_directories(store / "work");
        auto entries = m.working_clone(*r, "/src", store / "work");
        ASSERT_TRUE(entries) << entries.error();
        auto e = by_path(*entries);
        ASSERT_TRUE(e.contains("src/.git/HEAD"));
        EXPECT_EQ(read_file(e["src/.git/HEAD"].source).value(), "ref: refs/heads/main\n");
        EXPECT_FALSE(e.contains("src/.git/FETCH_HEAD"));
        auto clone = (store / "work" / "clone").string();
        EXPECT_EQ(sh("git -C " + clone + " rev-parse HEAD"), r->commit);
        EXPECT_EQ(sh("git -C " + clone + " rev-list --count HEAD"), "2");
        EXPECT_EQ(sh("git -C " + clone + " config remote.origin.url"), f.repo.string());
        EXPECT_EQ(sh("git -C " + clone + " rev-parse @{upstream}"), r->commit);
        std::string all;
        for (const auto& [p, entry] : e)
            all += p + " " + std::to_string(entry.mode) + " " +
                   (entry.source.empty() ? "" : sha256_file(entry.source).value()) + "\n";
        blobs[i] = all;
    }
    EXPECT_EQ(blobs[0], blobs[1]); // the .git directory is the same bytes from two stores
}

TEST(GitMirror, CredentialsStayOutOfErrorsAndConfig) {
    Fixture f;
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve("http://user:s3cr3t@127.0.0.1:9/repo.git", "main");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().find("s3cr3t"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("http://127.0.0.1:9/repo.git"), std::string::npos) << r.error();
    for (const auto& l : f.log)
        EXPECT_EQ(l.find("s3cr3t"), std::string::npos) << l;
}

TEST(GitMirror, ATreeWithADotGitPathIsRefused) {
    Fixture f;
    // A tree entry ".GIT/config" (git's index refuses it; plumbing can still write the tree).
    std::string blob = sh("cd " + f.repo.string() + " && echo x | git hash-object -w --stdin");
    std::string inner = sh("cd " + f.repo.string() + " && printf '100644 blob " + blob +
                           "\\tconfig\\n' | git mktree");
    std::string top = sh("cd " + f.repo.string() + " && printf '040000 tree " + inner +
                         "\\t.GIT\\n' | git mktree");
    std::string commit = sh("cd " + f.repo.string() + " && git commit-tree -m evil " + top);
    sh("cd " + f.repo.string() + " && git update-ref refs/heads/evil " + commit);
    auto m = f.mirrors(f.dir / "store");
    auto r = m.resolve(f.repo.string(), "evil");
    ASSERT_TRUE(r) << r.error();
    fs::create_directories(f.dir / "content");
    auto tree = m.tree_entries(*r, {"", false, f.dir / "content"});
    ASSERT_FALSE(tree);
    EXPECT_NE(tree.error().find("path '.GIT/config' has a .git component"), std::string::npos)
        << tree.error();
}

TEST(RemoteUrl, SplitsCredentialsAndResolvesRelativeUrls) {
    auto r = parse_remote_url("https://me:p%40ss@example.com/a/b.git");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->url, "https://example.com/a/b.git");
    EXPECT_EQ(r->user, "me");
    EXPECT_EQ(r->password, "p@ss");
    EXPECT_EQ(basic_auth_header(*r), "Authorization: Basic bWU6cEBzcw==");
    EXPECT_FALSE(parse_remote_url("https://h/a b"));
    EXPECT_EQ(parse_remote_url("git@host:x.git")->url, "git@host:x.git");
    EXPECT_EQ(resolve_relative_url("https://h/org/super.git", "../lib.git"),
              "https://h/org/lib.git");
    EXPECT_EQ(resolve_relative_url("https://h/org/super", "./sub"), "https://h/org/super/sub");
    EXPECT_EQ(resolve_relative_url("https://h/org/super", "https://o/x"), "https://o/x");
}
