#pragma once
// Git remotes mirrored into the store (DESIGN.md "The store": git/<sha256(url)>.git), their refs
// resolved to commits, and a commit's tree as the entries of a layer.
//
//   url, ref ──resolve──▶ commit (an unmoved branch: one ls-remote; a commit already mirrored:
//                         nothing; offline: the mirror's refs only)
//
// A mirror is a bare repository holding the refs builds asked for, under their own names. It
// fetches a ref it has not seen at depth 1 (the tree is what a layer needs, and a remote's
// history often dwarfs its tip), and after that with a plain fetch: only the commits that are
// new, down to the ones it has. The history behind a tip is fetched (once) when a working
// clone needs it. A ref rewritten below the mirror's shallow boundary brings its history.
//   commit ──tree_entries──▶ layer::Entry list (modes 0644/0755 as git records them, symlinks
//                         kept, submodules pinned at their recorded commits) whose contents are
//                         files named by their blob id in a directory the caller keeps, or
//                         (those not there yet) a stream read as the layer is written
//   commit ──working_clone──▶ a .git directory holding exactly that history, origin = url, so
//                         `git pull` in the image fetches only what is new
//
// Every git process runs with an environment built here: no system or global config, no
// terminal prompt, LC_ALL=C, TZ=UTC, the host's CA bundle; the caller's proxies (http_proxy…)
// and SSH_AUTH_SOCK pass through. Credentials in a URL are taken out of it (remote_url.hpp):
// they reach git only as an http.extraHeader in the environment of a fetch, never a mirror's
// config, a key or a log. Each mirror is updated under an flock (locks/git/<hash>.lock), so
// concurrent builds fetch it once; its gc.auto is 0, so objects a reader uses never vanish.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "factory/layer/entry.hpp"
#include "factory/sources/git_blob_stream.hpp"
#include "factory/sources/remote_url.hpp"
#include "factory/util/error.hpp"

namespace factory::sources {

namespace fs = std::filesystem;

struct GitOptions {
    bool offline = false; // no network: refs and commits come from the mirror only
    int attempts = 3;     // tries of each network operation (clone, fetch, ls-remote)
    std::chrono::milliseconds backoff{1000};      // before the 2nd try; doubled each time after
    fs::path ca_bundle;                           // GIT_SSL_CAINFO; empty: git's default store
    fs::path git;                                 // the program; empty: $PATH, /usr/bin
    std::function<void(std::string_view)> on_log; // one line per network operation
};

struct ResolvedRef {
    std::string url;    // without credentials
    std::string ref;    // what was asked ("main", "v1.2", a commit id)
    std::string name;   // the full ref it named ("refs/heads/main"; "" for a commit id)
    std::string commit; // 40 hex digits
    fs::path mirror;    // the bare mirror holding it
};

struct Submodule {
    std::string path;   // inside the layer
    std::string url;    // resolved against the superproject's URL, without credentials
    std::string commit; // the gitlink's commit
};

struct TreeOptions {
    std::string dest;        // where the tree goes in the layer, relative ("src/app"), "" = root
    bool submodules = false; // false: a submodule is an empty directory, as a plain checkout has
    // An existing directory for the blobs' contents, one file per blob id; a blob already
    // there is not written again, so a directory kept from build to build makes a new commit
    // cost only the blobs it changed.
    fs::path content_dir;
    // true: the regular files' blobs not yet in content_dir are not extracted here but read
    // while the layer is written, through Tree::stream (git_blob_stream.hpp), which keeps them
    // in content_dir as it goes. false: every blob is in content_dir on return.
    bool stream = false;
};

struct Tree {
    std::vector<layer::Entry> entries; // not sorted; directories for every parent under dest
    std::vector<Submodule> submodules; // those included, depth first
    std::uint64_t files = 0, bytes = 0;
    // With TreeOptions::stream, the contents of the entries whose blobs are not in content_dir
    // yet (null when there are none): pass it to the layer writer (LayerOptions::content).
    // Their sources name the files the stream writes.
    std::unique_ptr<GitBlobStream> stream;
};

class GitMirrors {
  public:
    // Throws nothing; the store's git/ and locks/git/ directories are created on first use.
    GitMirrors(fs::path store_root, GitOptions options = {});

    // STORE/git/<sha256(url)>.git, url without credentials.
    static fs::path mirror_path(const fs::path& store_root, const std::string& url);

    // Resolves `ref` (a branch, a tag — annotated ones peeled to their commit —, a full ref
    // name, or a 40-hex commit id) to a commit and makes sure the mirror holds it, fetching
    // only that ref when the commit is missing: its tip alone (depth 1) the first time the
    // mirror sees the ref, what is new since then after that. With `history`, the mirror
    // also holds every ancestor of the commit (a working clone needs them): a shallow mirror
    // is deepened once. Errors name the URL (without credentials) and the ref: "ref 'nope'
    // not found in https://host/r.git", "offline: no mirror of …", git's last error line
    // after the last try.
    Result<ResolvedRef> resolve(const std::string& url, const std::string& ref,
                                bool history = false);

    // Makes sure the mirror holds `commit`, which `name` named upstream when it was resolved
    // (a full ref name or "HEAD"; "" for a commit id): fetched as resolve() fetches that ref,
    // so the mirror keeps it under its name and the next fetch of it brings only what is new.
    // Errors: those of resolve(), and "commit … not found in URL".
    Result<ResolvedRef> fetch_commit(const std::string& url, const std::string& commit,
                                     const std::string& name, bool history = false);

    // What `ref` (a branch or tag; not a commit id) names on the remote now: one ls-remote, no
    // fetch, nothing written. The result's commit and name; its mirror is where resolve()
    // would keep it. Errors: offline ("offline: cannot ask URL"), those of resolve().
    Result<ResolvedRef> remote_ref(const std::string& url, const std::string& ref);

    // The commit's committer time (seconds since the epoch).
    Result<std::int64_t> commit_time(const ResolvedRef& resolved);

    // The commit's tree as entries under options.dest. Submodules (options.submodules) are
    // mirrored and resolved to their gitlink commits, recursively. Errors: a path that can't
    // be a layer path, a submodule missing from .gitmodules, git failing.
    Result<Tree> tree_entries(const ResolvedRef& resolved, const TreeOptions& options);

    // A repository at WORK_DIR/clone whose .git holds the history of the commit (all of it, or
    // the last `depth` commits when depth > 0; resolve() it with `history` first, or this is
    // an error naming the missing history), packed deterministically, with origin = the
    // URL, a branch of the ref's name tracking origin (detached HEAD for a tag or a commit) and
    // an index without stat data (git status refreshes it). Returns the entries of its .git
    // directory under DEST/.git; their contents stay in WORK_DIR.
    Result<std::vector<layer::Entry>> working_clone(const ResolvedRef& resolved,
                                                    const std::string& dest,
                                                    const fs::path& work_dir, int depth = 0);

  private:
    struct Run;
    Result<std::string> git(const std::vector<std::string>& args, const fs::path& cwd,
                            const RemoteUrl* remote = nullptr, int stdin_fd = -1);
    // git() tried options_.attempts times with backoff; an error `permanent` says no retry
    // can mend is returned at once.
    Result<std::string> git_network(const std::vector<std::string>& args, const fs::path& cwd,
                                    const RemoteUrl& remote,
                                    bool (*permanent)(const std::string&) = nullptr);
    enum class Depth { tip, new_commits, history };
    Result<void> fetch(const RemoteUrl& remote, const fs::path& repo, const std::string& refspec,
                       Depth depth);
    Result<void> update_mirror(const RemoteUrl& remote, const ResolvedRef& want, bool history);
    Result<ResolvedRef> fetched(const RemoteUrl& remote, ResolvedRef out, bool history);
    Result<std::string> ls_remote(const RemoteUrl& remote, const std::string& ref,
                                  std::string* name);
    Result<std::string> local_ref(const fs::path& mirror, const std::string& ref,
                                  std::string* name);
    bool has_commit(const fs::path& mirror, const std::string& commit);
    bool has_history(const fs::path& mirror, const std::string& commit);
    Result<void> add_tree(const ResolvedRef& resolved, const std::string& prefix,
                          const TreeOptions& options, Tree& tree, int level);
    std::vector<std::string> environment(const RemoteUrl* remote) const;
    void log(const std::string& line) const {
        if (options_.on_log) options_.on_log(line);
    }

    fs::path root_;
    GitOptions options_;
    fs::path program_;
};

// True if s is 40 lower-case hex digits (a SHA-1 object id).
bool is_commit_id(std::string_view s) noexcept;

} // namespace factory::sources
