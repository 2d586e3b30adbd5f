#include "factory/sources/git_mirror.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <thread>
#include <unordered_set>

#include "cache/lock.hpp"
#include "factory/sources/command.hpp"
#include "factory/sources/git_blob_stream.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"
#include "factory/util/sha256.hpp"

namespace factory::sources {

namespace {

constexpr int max_submodule_depth = 8;

std::string quote(std::string_view s) {
    return "'" + std::string(s) + "'";
}

// A ref as a user may write it: no option look-alike, nothing git's revision syntax would
// read as an operator (git-check-ref-format(1)).
Result<void> check_ref(const std::string& ref) {
    if (ref.empty()) return Unexpected("the ref is empty");
    if (ref.front() == '-' || ref.front() == '/' || ref.back() == '/' || ref.back() == '.' ||
        ref.find("..") != std::string::npos || ref.find("@{") != std::string::npos ||
        ref.find("//") != std::string::npos || ref.ends_with(".lock"))
        return Unexpected("invalid ref " + quote(ref));
    for (unsigned char c : ref)
        if (c < 0x21 || c == 0x7f ||
            std::string_view(" ~^:?*[\\").find(static_cast<char>(c)) != std::string_view::npos)
            return Unexpected("invalid ref " + quote(ref));
    return {};
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos < text.size();) {
        auto end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        out.push_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
        s.pop_back();
    return s;
}

struct TreeRecord {
    std::string mode, type, id, path;
    std::uint64_t size = 0;
};

// `git ls-tree -r -z -l` records: "<mode> <type> <id> <size>\t<path>\0".
Result<std::vector<TreeRecord>> parse_ls_tree(const std::string& out) {
    std::vector<TreeRecord> records;
    std::size_t pos = 0;
    while (pos < out.size()) {
        auto end = out.find('\0', pos);
        if (end == std::string::npos) end = out.size();
        std::string_view rec(out.data() + pos, end - pos);
        pos = end + 1;
        auto tab = rec.find('\t');
        if (tab == std::string_view::npos) return Unexpected("git ls-tree: malformed output");
        std::string_view head = rec.substr(0, tab);
        TreeRecord r;
        r.path = std::string(rec.substr(tab + 1));
        auto s1 = head.find(' '), s2 = head.find(' ', s1 + 1), s3 = head.find(' ', s2 + 1);
        if (s1 == std::string_view::npos || s2 == std::string_view::npos ||
            s3 == std::string_view::npos)
            return Unexpected("git ls-tree: malformed output");
        r.mode = std::string(head.substr(0, s1));
        r.type = std::string(head.substr(s1 + 1, s2 - s1 - 1));
        r.id = std::string(head.substr(s2 + 1, s3 - s2 - 1));
        auto size = head.substr(s3 + 1);
        while (!size.empty() && size.front() == ' ')
            size.remove_prefix(1);
        // ls-tree -l prints "BAD" for a blob it can't read.
        if (r.type == "blob") {
            if (size.empty() || size.find_first_not_of("0123456789") != std::string_view::npos)
                return Unexpected("git ls-tree: blob " + r.id + " of " + quote(r.path) +
                                  " cannot be read from the mirror");
            r.size = std::stoull(std::string(size));
        }
        records.push_back(std::move(r));
    }
    return records;
}

std::string join_path(const std::string& a, const std::string& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    return a + "/" + b;
}

void add_parents(const std::string& path, std::set<std::string>& dirs) {
    for (auto slash = path.rfind('/'); slash != std::string::npos && slash > 0;
         slash = path.rfind('/', slash - 1)) {
        if (!dirs.insert(path.substr(0, slash)).second) break;
        if (slash == 0) break;
    }
}

layer::Entry dir_entry(const std::string& path) {
    layer::Entry e;
    e.path = path;
    e.type = layer::Entry::Type::dir;
    e.mode = 0755;
    return e;
}

// A tree entry named ".git" (any case, as git's verify_path) would plant a repository's config
// or hooks in the layer, which git run there later would obey.
bool has_git_component(std::string_view path) {
    std::size_t i = 0;
    while (i <= path.size()) {
        auto j = path.find('/', i);
        if (j == std::string_view::npos) j = path.size();
        auto part = path.substr(i, j - i);
        if (part.size() == 4 && part[0] == '.' && (part[1] | 0x20) == 'g' &&
            (part[2] | 0x20) == 'i' && (part[3] | 0x20) == 't')
            return true;
        i = j + 1;
    }
    return false;
}

// A submodule's URL comes from the repository, not the recipe: only network schemes, so a
// hostile .gitmodules can't make the build read a repository of the host. A local
// superproject (a path or file://) may name local submodules.
bool allowed_submodule_url(const std::string& super, const std::string& url) {
    for (const char* scheme : {"https://", "http://", "git://", "ssh://"})
        if (url.starts_with(scheme)) return true;
    bool local_super = super.starts_with("/") || super.starts_with("file://");
    return local_super && (url.starts_with("/") || url.starts_with("file://"));
}

} // namespace

bool is_commit_id(std::string_view s) noexcept {
    if (s.size() != 40) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

GitMirrors::GitMirrors(fs::path store_root, GitOptions options)
    : root_(std::move(store_root)), options_(std::move(options)) {
    program_ = options_.git;
    if (program_.empty()) {
        for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"})
            if (::access((fs::path(dir) / "git").c_str(), X_OK) == 0) {
                program_ = fs::path(dir) / "git";
                break;
            }
    }
}

fs::path GitMirrors::mirror_path(const fs::path& store_root, const std::string& url) {
    return store_root / "git" / (Sha256::hex(url) + ".git");
}

std::vector<std::string> GitMirrors::environment(const RemoteUrl* remote) const {
    std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                    "LC_ALL=C",
                                    "TZ=UTC",
                                    "GIT_CONFIG_NOSYSTEM=1",
                                    "GIT_CONFIG_GLOBAL=/dev/null",
                                    "GIT_TERMINAL_PROMPT=0",
                                    "GIT_SSH_COMMAND=ssh -o BatchMode=yes"};
    // ssh reads ~/.ssh/known_hosts; git itself reads no file under HOME (GIT_CONFIG_GLOBAL).
    for (const char* name : {"HOME", "SSH_AUTH_SOCK", "http_proxy", "https_proxy", "no_proxy",
                             "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy", "ALL_PROXY"})
        if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
    if (!options_.ca_bundle.empty()) env.push_back("GIT_SSL_CAINFO=" + options_.ca_bundle.string());
    // Settings for every git process, through the environment so no config file holds them:
    // the mirror is never garbage-collected under a reader and a commit id may be fetched from
    // a mirror. Threads are left to git (index-pack resolves a clone's deltas on every core);
    // the one pack whose bytes matter, a working clone's, is made by one thread (--threads=1).
    std::vector<std::pair<std::string, std::string>> config = {
        {"gc.auto", "0"},
        {"core.logAllRefUpdates", "false"},
        {"transfer.unpackLimit", "1"},
        {"protocol.version", "2"},
        {"uploadpack.allowAnySHA1InWant", "true"},
        {"advice.detachedHead", "false"},
        {"init.defaultBranch", "main"},
        {"safe.directory", "*"},
    };
    // The credentials go to the URL's own prefix only: a redirect to another host gets none.
    if (remote && remote->has_credentials())
        config.emplace_back("http." + remote->url + ".extraHeader", basic_auth_header(*remote));
    env.push_back("GIT_CONFIG_COUNT=" + std::to_string(config.size()));
    for (std::size_t i = 0; i < config.size(); ++i) {
        env.push_back("GIT_CONFIG_KEY_" + std::to_string(i) + "=" + config[i].first);
        env.push_back("GIT_CONFIG_VALUE_" + std::to_string(i) + "=" + config[i].second);
    }
    return env;
}

Result<std::string> GitMirrors::git(const std::vector<std::string>& args, const fs::path& cwd,
                                    const RemoteUrl* remote, int stdin_fd) {
    if (program_.empty())
        return Unexpected("git is not installed (looked in /usr/bin, /usr/local/bin, /bin)");
    Command c;
    c.argv.push_back(program_.string());
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.env = environment(remote);
    c.cwd = cwd;
    c.stdin_fd = stdin_fd;
    auto r = run_command(c);
    if (!r) return Unexpected("git " + args.front() + ": " + r.error());
    if (r->status != 0) {
        auto why = last_line(r->error);
        return Unexpected("git " + args.front() + " failed (exit " + std::to_string(r->status) +
                          ")" + (why.empty() ? "" : ": " + why));
    }
    return std::move(r->output);
}

Result<std::string> GitMirrors::git_network(const std::vector<std::string>& args,
                                            const fs::path& cwd, const RemoteUrl& remote,
                                            bool (*permanent)(const std::string&)) {
    auto delay = options_.backoff;
    for (int attempt = 1;; ++attempt) {
        auto r = git(args, cwd, &remote);
        if (r || attempt >= options_.attempts || (permanent && permanent(r.error()))) return r;
        log("git " + args.front() + " " + remote.url + ": " + r.error() + "; trying again in " +
            std::to_string(delay.count()) + " ms");
        if (!sleep_unless_interrupted(delay)) return Unexpected(interrupted_error().what());
        delay *= 2;
    }
}

bool GitMirrors::has_commit(const fs::path& mirror, const std::string& commit) {
    if (!fs::exists(mirror / "HEAD")) return false;
    return git({"cat-file", "-e", commit + "^{commit}"}, mirror).has_value();
}

// Every ancestor of the commit is in the mirror: none of its shallow boundaries (the commits
// whose parents a depth-limited fetch left out) is the commit or below it.
bool GitMirrors::has_history(const fs::path& mirror, const std::string& commit) {
    if (!fs::exists(mirror / "shallow")) return true; // a complete repository
    auto shallow = read_file(mirror / "shallow", 1 << 26);
    if (!shallow) return false;
    for (const auto& boundary : lines(*shallow))
        if (is_commit_id(boundary) &&
            git({"merge-base", "--is-ancestor", boundary, commit}, mirror))
            return false;
    return true;
}

namespace {

// What no retry mends: a transport or a server without shallow fetches (dumb HTTP, very old
// servers); such a remote is fetched whole.
bool shallow_unsupported(const std::string& error) {
    return error.find("does not support shallow") != std::string::npos;
}

// Nor a commit the server does not have, or won't hand out by id ("upload-pack: not our
// ref"): the caller falls back to every ref, and a retry would only wait.
bool fetch_permanent(const std::string& error) {
    return shallow_unsupported(error) || error.find("not our ref") != std::string::npos;
}

} // namespace

Result<void> GitMirrors::fetch(const RemoteUrl& remote, const fs::path& repo,
                               const std::string& refspec, Depth depth) {
    // FETCH_HEAD is written: its time is when the mirror was last fetched (cache prune).
    std::vector<std::string> args = {"fetch", "--quiet", "--no-tags"};
    if (depth == Depth::tip) args.push_back("--depth=1");
    if (depth == Depth::history && fs::exists(repo / "shallow")) args.push_back("--unshallow");
    args.insert(args.end(), {"origin", refspec});
    auto r = git_network(args, repo, remote, fetch_permanent);
    if (!r && depth == Depth::tip && shallow_unsupported(r.error()))
        return fetch(remote, repo, refspec, Depth::history);
    if (!r) return Unexpected(r.error());
    return {};
}

// Fetches what `want` names into its mirror (made on first use, in a temporary directory
// renamed into place once it holds the commit): the ref by its name, else the commit by id;
// the ref's tip alone when the mirror has not seen it, with `history` every ancestor.
Result<void> GitMirrors::update_mirror(const RemoteUrl& remote, const ResolvedRef& want,
                                       bool history) {
    const fs::path& mirror = want.mirror;
    fs::path repo = mirror;
    std::error_code ec;
    bool made = !fs::exists(mirror / "HEAD");
    if (made) {
        log("git: mirroring " + remote.url);
        fs::create_directories(mirror.parent_path(), ec);
        if (ec)
            return Unexpected("cannot create " + mirror.parent_path().string() + ": " +
                              ec.message());
        repo = mirror.parent_path() /
               (std::string(temp_prefix) + mirror.filename().string() + "-" + unique_suffix());
        for (const auto& args : std::vector<std::vector<std::string>>{
                 {"init", "--bare", "--quiet", "--template=", repo.string()},
                 {"config", "remote.origin.url", remote.url},
                 {"config", "remote.origin.fetch", "+refs/*:refs/*"},
                 {"config", "remote.origin.mirror", "true"},
                 {"config", "gc.auto", "0"}})
            if (auto r = git(args, args.front() == "init" ? fs::path() : repo); !r) {
                fs::remove_all(repo, ec);
                return Unexpected(r.error());
            }
    } else {
        log("git: fetching " + remote.url);
    }
    // The ref under its own name (the remote's HEAD under refs/factory/HEAD, and the mirror's
    // HEAD detached at it, which offline resolution reads), so the next fetch of it knows
    // what the mirror has; a commit id under no name.
    std::string local = want.name == "HEAD" ? "refs/factory/HEAD" : want.name;
    Depth depth = history ? Depth::history : Depth::tip;
    if (!history && !local.empty() && !made &&
        git({"rev-parse", "--verify", "--quiet", local + "^{commit}"}, repo))
        depth = Depth::new_commits;
    std::string refspec = local.empty() ? want.commit : "+" + want.name + ":" + local;
    auto r = fetch(remote, repo, refspec, depth);
    bool by_id = local.empty();
    // The ref moved on since ls-remote: its commit by id.
    if (r && !by_id && !has_commit(repo, want.commit)) {
        r = fetch(remote, repo, want.commit, depth);
        by_id = true;
    }
    // A server that hands out no commit by id (or not this one): every ref with its history,
    // as a full mirror holds them.
    if (by_id && !has_commit(repo, want.commit))
        r = fetch(remote, repo, "+refs/*:refs/*", Depth::history);
    // The remote's HEAD as last fetched, not the (perhaps older, pinned) commit asked for.
    if (r && want.name == "HEAD" && has_commit(repo, local))
        r = [&]() -> Result<void> {
            auto u = git({"update-ref", "--no-deref", "HEAD", local}, repo);
            if (!u) return Unexpected(u.error());
            return {};
        }();
    if (made && r) {
        fs::rename(repo, mirror, ec);
        if (ec)
            r = Unexpected("cannot rename the mirror into " + mirror.string() + ": " +
                           ec.message());
    }
    if (made && !r) fs::remove_all(repo, ec);
    return r;
}

Result<std::string> GitMirrors::ls_remote(const RemoteUrl& remote, const std::string& ref,
                                          std::string* name) {
    std::vector<std::string> want;
    if (ref == "HEAD" || ref.starts_with("refs/")) {
        want = {ref};
    } else {
        want = {"refs/heads/" + ref, "refs/tags/" + ref};
    }
    std::vector<std::string> args = {"ls-remote", "--quiet", "--", remote.url};
    // The patterns match whole names: a peeled tag's line ("refs/tags/v1^{}") needs its own.
    for (const auto& w : want) {
        args.push_back(w);
        if (w.starts_with("refs/tags/")) args.push_back(w + "^{}");
    }
    auto out = git_network(args, {}, remote);
    if (!out) return Unexpected(out.error());
    std::map<std::string, std::string> refs;
    for (const auto& line : lines(*out)) {
        auto tab = line.find('\t');
        if (tab == 40 && is_commit_id(line.substr(0, 40)))
            refs[line.substr(41)] = line.substr(0, 40);
    }
    for (const auto& w : want) {
        // An annotated tag: its peeled entry names the commit.
        if (auto it = refs.find(w + "^{}"); it != refs.end()) {
            *name = w;
            return it->second;
        }
        if (auto it = refs.find(w); it != refs.end()) {
            *name = w;
            return it->second;
        }
    }
    return Unexpected("ref " + quote(ref) + " not found in " + remote.url);
}

Result<std::string> GitMirrors::local_ref(const fs::path& mirror, const std::string& ref,
                                          std::string* name) {
    std::vector<std::string> candidates;
    if (ref == "HEAD" || ref.starts_with("refs/"))
        candidates = {ref};
    else
        candidates = {"refs/heads/" + ref, "refs/tags/" + ref};
    for (const auto& c : candidates)
        if (auto r = git({"rev-parse", "--verify", "--quiet", c + "^{commit}"}, mirror)) {
            *name = c;
            return trim(*r);
        }
    return Unexpected("ref " + quote(ref) + " not found");
}

Result<ResolvedRef> GitMirrors::resolve(const std::string& url, const std::string& ref,
                                        bool history) {
    auto remote = parse_remote_url(url);
    if (!remote) return Unexpected("git url: " + remote.error());
    if (auto r = check_ref(ref); !r) return Unexpected(r.error() + " for " + remote->url);
    ResolvedRef out;
    out.url = remote->url;
    out.ref = ref;
    out.mirror = mirror_path(root_, remote->url);
    if (is_commit_id(ref)) {
        out.commit = ref;
    } else if (options_.offline) {
        if (!fs::exists(out.mirror / "HEAD"))
            return Unexpected("offline: no mirror of " + remote->url + " in the store");
        auto c = local_ref(out.mirror, ref, &out.name);
        if (!c) return Unexpected("offline: " + c.error() + " in the mirror of " + remote->url);
        out.commit = *c;
    } else {
        auto c = ls_remote(*remote, ref, &out.name);
        if (!c) return Unexpected(c.error());
        out.commit = *c;
    }
    return fetched(*remote, std::move(out), history);
}

Result<ResolvedRef> GitMirrors::fetch_commit(const std::string& url, const std::string& commit,
                                             const std::string& name, bool history) {
    auto remote = parse_remote_url(url);
    if (!remote) return Unexpected("git url: " + remote.error());
    if (!is_commit_id(commit))
        return Unexpected("'" + commit + "' is not a commit id (40 hex digits)");
    if (!name.empty())
        if (auto r = check_ref(name); !r) return Unexpected(r.error() + " for " + remote->url);
    ResolvedRef out;
    out.url = remote->url;
    out.ref = commit;
    out.name = name;
    out.commit = commit;
    out.mirror = mirror_path(root_, remote->url);
    return fetched(*remote, std::move(out), history);
}

Result<ResolvedRef> GitMirrors::fetched(const RemoteUrl& remote, ResolvedRef out, bool history) {
    auto ready = [&] {
        return has_commit(out.mirror, out.commit) &&
               (!history || has_history(out.mirror, out.commit));
    };
    if (ready()) return out;
    if (options_.offline)
        return Unexpected(
            "offline: " + std::string(has_commit(out.mirror, out.commit) ? "the history of " : "") +
            "commit " + out.commit + " of " + remote.url + " is not in the store");
    // One fetch per mirror at a time; whoever waited finds the commit there already.
    auto lock = cache::FileLock::exclusive(root_ / "locks" / "git" /
                                           (out.mirror.stem().string() + ".lock"));
    if (ready()) return out;
    auto r = update_mirror(remote, out, history);
    if (ready()) return out;
    if (!r) return Unexpected(r.error());
    return Unexpected(std::string(has_commit(out.mirror, out.commit) ? "the history of " : "") +
                      "commit " + out.commit + " not found in " + remote.url);
}

Result<ResolvedRef> GitMirrors::remote_ref(const std::string& url, const std::string& ref) {
    auto remote = parse_remote_url(url);
    if (!remote) return Unexpected("git url: " + remote.error());
    if (auto r = check_ref(ref); !r) return Unexpected(r.error() + " for " + remote->url);
    if (options_.offline) return Unexpected("offline: cannot ask " + remote->url);
    ResolvedRef out;
    out.url = remote->url;
    out.ref = ref;
    out.mirror = mirror_path(root_, remote->url);
    auto c = ls_remote(*remote, ref, &out.name);
    if (!c) return Unexpected(c.error());
    out.commit = *c;
    return out;
}

Result<std::int64_t> GitMirrors::commit_time(const ResolvedRef& resolved) {
    auto r = git({"log", "-1", "--format=%ct", resolved.commit}, resolved.mirror);
    if (!r) return Unexpected(r.error());
    try {
        return std::stoll(trim(*r));
    } catch (const std::exception&) {
        return Unexpected("git log: unexpected output for " + resolved.commit);
    }
}

Result<Tree> GitMirrors::tree_entries(const ResolvedRef& resolved, const TreeOptions& options) {
    Tree tree;
    if (options.stream) tree.stream = std::make_unique<GitBlobStream>(options.content_dir);
    std::string dest = options.dest;
    while (dest.starts_with('/'))
        dest.erase(0, 1);
    while (dest.ends_with('/'))
        dest.pop_back();
    if (!dest.empty())
        if (auto r = layer::check_path(dest); !r) return Unexpected("dest: " + r.error());
    if (auto r = add_tree(resolved, dest, options, tree, 0); !r) return Unexpected(r.error());
    std::set<std::string> dirs;
    std::unordered_set<std::string> seen;
    for (const auto& e : tree.entries) {
        seen.insert(e.path);
        add_parents(e.path, dirs);
    }
    if (!dest.empty()) {
        dirs.insert(dest);
        add_parents(dest, dirs);
    }
    for (const auto& d : dirs)
        if (!seen.contains(d)) tree.entries.push_back(dir_entry(d));
    if (tree.stream && tree.stream->empty()) tree.stream.reset();
    return tree;
}

Result<void> GitMirrors::add_tree(const ResolvedRef& resolved, const std::string& prefix,
                                  const TreeOptions& options, Tree& tree, int level) {
    auto listing =
        git({"ls-tree", "-r", "-z", "-l", "--full-tree", resolved.commit}, resolved.mirror);
    if (!listing) return Unexpected(listing.error() + " (" + resolved.url + ")");
    auto records = parse_ls_tree(*listing);
    if (!records) return Unexpected(records.error() + " (" + resolved.url + ")");

    std::string wanted; // blob ids for cat-file, one a line, each once
    std::unordered_set<std::string> queued;
    std::vector<const TreeRecord*> gitlinks;
    Command cat_file;
    cat_file.argv = {program_.string(), "cat-file", "--batch"};
    cat_file.env = environment(nullptr);
    cat_file.cwd = resolved.mirror;
    for (const auto& r : *records) {
        std::string path = join_path(prefix, r.path);
        if (auto c = layer::check_path(path); !c)
            return Unexpected(resolved.url + " " + resolved.commit + ": " + c.error());
        if (has_git_component(r.path))
            return Unexpected(resolved.url + " " + resolved.commit + ": path " + quote(r.path) +
                              " has a .git component (git itself refuses to check it out)");
        if (r.type == "commit") {
            gitlinks.push_back(&r);
            continue;
        }
        if (r.type != "blob") continue;
        bool kept = fs::exists(options.content_dir / r.id);
        layer::Entry e;
        e.path = path;
        e.source = (options.content_dir / r.id).string();
        if (r.mode == "120000") {
            e.type = layer::Entry::Type::symlink;
            e.mode = 0777;
            if (!kept && queued.insert(r.id).second) wanted += r.id + "\n";
        } else {
            e.mode = r.mode == "100755" ? 0755 : 0644;
            e.size = r.size;
            e.content_id = "git-blob:" + r.id; // keys its gzip blocks (block_plan.hpp)
            ++tree.files;
            tree.bytes += r.size;
            if (!kept && tree.stream) {
                tree.stream->add(cat_file, resolved.url, path, r.id);
            } else if (!kept && queued.insert(r.id).second) {
                wanted += r.id + "\n";
            }
        }
        tree.entries.push_back(std::move(e));
    }

    // Symlinks' blobs now (their targets are in the entries), and without a stream the files'.
    if (!wanted.empty())
        if (auto r = extract_blobs(cat_file, wanted, options.content_dir); !r)
            return Unexpected(r.error());
    // Symlink targets are their blobs' contents.
    for (auto& e : tree.entries)
        if (e.type == layer::Entry::Type::symlink && !e.source.empty()) {
            auto target = read_file(e.source, 4096);
            if (!target) return Unexpected(target.error());
            e.link = *target;
            e.source.clear();
        }

    if (gitlinks.empty()) return {};
    if (!options.submodules) {
        for (const auto* g : gitlinks)
            tree.entries.push_back(dir_entry(join_path(prefix, g->path)));
        return {};
    }
    if (level >= max_submodule_depth)
        return Unexpected(resolved.url + ": submodules nested more than " +
                          std::to_string(max_submodule_depth) + " deep");
    // .gitmodules at the commit: submodule.NAME.path and submodule.NAME.url.
    auto config = git({"config", "-z", "--blob", resolved.commit + ":.gitmodules", "--get-regexp",
                       "^submodule\\..*\\.(path|url)$"},
                      resolved.mirror);
    std::map<std::string, std::string> path_of, url_of;
    if (config) {
        std::size_t pos = 0;
        while (pos < config->size()) {
            auto end = config->find('\0', pos);
            if (end == std::string::npos) end = config->size();
            std::string rec = config->substr(pos, end - pos);
            pos = end + 1;
            auto nl = rec.find('\n');
            if (nl == std::string::npos) continue;
            std::string key = rec.substr(0, nl), value = rec.substr(nl + 1);
            auto dot = key.rfind('.');
            std::string name = key.substr(10, dot - 10); // after "submodule."
            (key.ends_with(".path") ? path_of : url_of)[name] = value;
        }
    }
    for (const auto* g : gitlinks) {
        std::string url;
        for (const auto& [name, p] : path_of)
            if (p == g->path && url_of.contains(name)) url = url_of[name];
        if (url.empty())
            return Unexpected(resolved.url + " " + resolved.commit + ": submodule " +
                              quote(g->path) + " has no url in .gitmodules");
        url = resolve_relative_url(resolved.url, url);
        if (!allowed_submodule_url(resolved.url, url))
            return Unexpected(resolved.url + " " + resolved.commit + ": submodule " +
                              quote(g->path) + ": URL " + quote(url) +
                              " is not a network URL (https, http, git, ssh)");
        auto sub = resolve(url, g->id);
        if (!sub) return Unexpected("submodule " + quote(g->path) + ": " + sub.error());
        std::string path = join_path(prefix, g->path);
        tree.submodules.push_back({path, sub->url, sub->commit});
        if (auto r = add_tree(*sub, path, options, tree, level + 1); !r) return r;
    }
    return {};
}

Result<std::vector<layer::Entry>> GitMirrors::working_clone(const ResolvedRef& resolved,
                                                            const std::string& dest,
                                                            const fs::path& work_dir, int depth) {
    if (!has_history(resolved.mirror, resolved.commit))
        return Unexpected("the mirror of " + resolved.url + " holds only part of the history of " +
                          resolved.commit + " (resolve it with its history first)");
    fs::path dir = work_dir / "clone";
    auto step = [&](std::vector<std::string> args) { return git(args, dir); };
    if (auto r = git({"init", "--quiet", "--template=", dir.string()}, {}); !r)
        return Unexpected(r.error());
    std::vector<std::string> fetch = {"fetch", "--quiet", "--no-tags", "--no-write-fetch-head"};
    if (depth > 0) fetch.push_back("--depth=" + std::to_string(depth));
    fetch.push_back("file://" + resolved.mirror.string());
    fetch.push_back(resolved.commit);
    std::string branch = resolved.name.starts_with("refs/heads/") ? resolved.name.substr(11) : "";
    std::vector<std::vector<std::string>> steps = {
        fetch,
        {"config", "remote.origin.url", resolved.url},
        {"config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"},
    };
    if (!branch.empty()) {
        steps.push_back({"update-ref", "refs/heads/" + branch, resolved.commit});
        steps.push_back({"update-ref", "refs/remotes/origin/" + branch, resolved.commit});
        steps.push_back({"symbolic-ref", "HEAD", "refs/heads/" + branch});
        steps.push_back({"config", "branch." + branch + ".remote", "origin"});
        steps.push_back({"config", "branch." + branch + ".merge", "refs/heads/" + branch});
    } else {
        steps.push_back({"update-ref", "--no-deref", "HEAD", resolved.commit});
    }
    // One pack with every delta computed afresh (-F), by one thread: its bytes depend on the
    // objects alone, not on how the mirror happens to be packed after its fetches.
    steps.push_back({"repack", "-a", "-d", "-F", "-q", "-n", "--threads=1"});
    // An index without stat data: the same bytes on every machine; git status refreshes it.
    steps.push_back({"read-tree", resolved.commit});
    for (const auto& s : steps)
        if (auto r = step(s); !r) return Unexpected(r.error());

    std::vector<layer::Entry> entries;
    std::string base = dest;
    while (base.starts_with('/'))
        base.erase(0, 1);
    while (base.ends_with('/'))
        base.pop_back();
    std::string git_dir = join_path(base, ".git");
    entries.push_back(dir_entry(git_dir));
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir / ".git", ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        auto rel = fs::relative(it->path(), dir / ".git").string();
        auto st = it->symlink_status();
        if (fs::is_directory(st)) {
            entries.push_back(dir_entry(git_dir + "/" + rel));
        } else if (fs::is_regular_file(st)) {
            layer::Entry e;
            e.path = git_dir + "/" + rel;
            e.source = it->path().string();
            e.size = fs::file_size(it->path());
            e.mode = (static_cast<unsigned>(st.permissions()) & 0100) ? 0755 : 0644;
            entries.push_back(std::move(e));
        }
    }
    if (ec) return Unexpected("reading " + (dir / ".git").string() + ": " + ec.message());
    return entries;
}

} // namespace factory::sources
