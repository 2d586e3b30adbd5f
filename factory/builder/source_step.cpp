#include "factory/builder/source_step.hpp"

#include "factory/builder/builder.hpp"
#include "factory/builder/key_fields.hpp"

#include <cctype>

#include "factory/sources/archive.hpp"
#include "factory/sources/download.hpp"
#include "factory/sources/trust.hpp"

namespace factory::builder {

SourceContext source_context(const BuildOptions& options,
                             std::function<void(std::string_view)> on_log) {
    SourceContext ctx;
    ctx.store_root = options.store_root;
    ctx.offline = options.offline || options.sources_from_store;
    ctx.secrets = &options.secrets;
    ctx.on_log = std::move(on_log);
    return ctx;
}

namespace {

namespace fs = std::filesystem;

// "/src/app/" → "src/app"; "/" → "".
std::string relative_dest(const std::string& dest) {
    std::string out;
    std::size_t i = 0;
    while (i <= dest.size()) {
        auto j = dest.find('/', i);
        if (j == std::string::npos) j = dest.size();
        auto part = dest.substr(i, j - i);
        if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
        i = j + 1;
    }
    return out;
}

sources::GitMirrors mirrors(const SourceContext& ctx) {
    sources::GitOptions o;
    o.offline = ctx.offline;
    o.ca_bundle = sources::host_ca_bundle();
    o.on_log = ctx.on_log;
    return sources::GitMirrors(ctx.store_root, o);
}

void add_parents(const std::string& path, std::vector<layer::Entry>& entries) {
    for (auto slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
        layer::Entry d;
        d.path = path.substr(0, slash);
        d.type = layer::Entry::Type::dir;
        d.mode = 0755;
        entries.push_back(std::move(d));
    }
}

// The URL's last path component, for a dest ending in '/'.
std::string url_basename(const std::string& url) {
    std::string path = sources::printable_url(url);
    path = path.substr(0, path.find_first_of("?#"));
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string percent_encode(std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// scheme://host/… → scheme://user:token@host/… for resolve(), which takes them out again
// before anything is stored or printed (sources/remote_url.hpp). A value without ':' is a token
// alone (user "x-access-token", which GitHub, Gitea and GitLab's personal tokens accept).
std::string with_credentials(const std::string& url, std::string value) {
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r'))
        value.pop_back();
    auto colon = value.find(':');
    std::string user = colon == std::string::npos ? "x-access-token" : value.substr(0, colon);
    std::string pass = colon == std::string::npos ? value : value.substr(colon + 1);
    auto clean = value_or_throw(sources::parse_remote_url(url)).url;
    auto start = clean.find("://") + 3;
    return clean.substr(0, start) + percent_encode(user) + ":" + percent_encode(pass) + "@" +
           clean.substr(start);
}

} // namespace

std::string describe_git(const recipe::GitStep& step) {
    return "git " + sources::printable_url(step.url) + "@" + step.ref + " → " + step.dest;
}

std::string describe_download(const recipe::DownloadStep& step) {
    return std::string(step.extract ? "download and extract " : "download ") +
           sources::printable_url(step.url) + " → " + step.dest;
}

namespace {

// The step's URL with its --secret's credentials in it (taken out again before anything is
// stored or printed).
std::string fetch_url(const SourceContext& ctx, const recipe::GitStep& step) {
    if (step.secret.empty()) return step.url;
    auto it = ctx.secrets ? ctx.secrets->find(step.secret) : decltype(ctx.secrets->end()){};
    if (!ctx.secrets || it == ctx.secrets->end())
        throw Error(step.where.str() + ": the step uses secret '" + step.secret +
                        "', but no --secret id=" + step.secret + ",src=FILE (or env=VAR) was given",
                    ExitCode::usage);
    return with_credentials(step.url, it->second);
}

} // namespace

sources::ResolvedRef resolve_git(const SourceContext& ctx, const recipe::GitStep& step,
                                 const std::string& id) {
    // A working clone needs the commit's history; the tree alone needs its tip.
    auto r = mirrors(ctx).resolve(fetch_url(ctx, step), step.ref, step.keep_git);
    if (!r) throw Error(id + ": " + r.error());
    return *r;
}

sources::ResolvedRef fetch_git(const SourceContext& ctx, const recipe::GitStep& step,
                               const std::string& commit, const std::string& name,
                               const std::string& id) {
    auto r = mirrors(ctx).fetch_commit(fetch_url(ctx, step), commit, name, step.keep_git);
    if (!r) throw Error(id + ": " + r.error());
    r->ref = step.ref;
    return *r;
}

bool commit_not_found(const Error& e, const std::string& commit) {
    // GitMirrors::fetched's words ("the history of commit …" is a commit that is there).
    std::string what = e.what();
    auto at = what.find("commit " + commit + " not found in ");
    return at != std::string::npos && !std::string_view(what).substr(0, at).ends_with("of ");
}

sources::ResolvedRef peek_git(const SourceContext& ctx, const recipe::GitStep& step,
                              const std::string& id) {
    auto r = mirrors(ctx).remote_ref(fetch_url(ctx, step), step.ref);
    if (!r) throw Error(id + ": " + r.error());
    return *r;
}

void add_git_key(cache::KeyBuilder& kb, const recipe::GitStep& step,
                 const sources::ResolvedRef& resolved) {
    kb.add(field::git_url, resolved.url);
    kb.add(field::git_commit, resolved.commit);
    // A working clone holds the ref's name (its branch); the tree alone does not.
    if (step.keep_git) kb.add(field::git_ref, resolved.name);
    kb.add(field::dest, relative_dest(step.dest));
    kb.add(field::submodules, step.submodules ? "yes" : "no");
    kb.add(field::keep_git, step.keep_git ? "yes" : "no");
    kb.add(field::depth, step.depth);
    kb.add(field::mtime, step.mtime == recipe::GitStep::Mtime::commit ? "commit" : "epoch");
}

SourceOutcome execute_git(const SourceContext& ctx, const recipe::GitStep& step,
                          const sources::ResolvedRef& resolved, const std::string& id) {
    SourceOutcome out;
    out.scratch = std::make_unique<TempDir>(ctx.store_root / "tmp", "git-");
    // The blobs' contents stay beside the mirror, one file per blob id, from build to build: a
    // new commit writes only the blobs it changed (and creating thousands of files right after
    // deleting as many is very slow on ext4: MACHINE-NOTES.md "The disk and memory"). Those not
    // there yet are streamed from the mirror while the layer is written (out.content), and
    // written there on the way.
    fs::path content = resolved.mirror.parent_path() / (resolved.mirror.stem().string() + ".blobs");
    std::error_code ec;
    fs::create_directories(content, ec);
    if (ec) throw Error(id + ": cannot create " + content.string() + ": " + ec.message());
    auto m = mirrors(ctx);
    std::string dest = relative_dest(step.dest);
    auto tree = m.tree_entries(resolved, {dest, step.submodules, content, true});
    if (!tree) throw Error(id + ": " + tree.error());
    out.entries = std::move(tree->entries);
    out.content = std::move(tree->stream);
    if (step.keep_git) {
        auto clone = m.working_clone(resolved, dest, out.scratch->path(), step.depth);
        if (!clone) throw Error(id + ": " + clone.error());
        out.entries.insert(out.entries.end(), std::make_move_iterator(clone->begin()),
                           std::make_move_iterator(clone->end()));
    }
    if (step.mtime == recipe::GitStep::Mtime::commit) {
        auto t = m.commit_time(resolved);
        if (!t) throw Error(id + ": " + t.error());
        out.epoch = *t;
    }
    return out;
}

void add_download_key(cache::KeyBuilder& kb, const recipe::DownloadStep& step) {
    kb.add(field::sha256, step.sha256);
    kb.add(field::dest, step.dest);
    // A dest ending in '/' takes the file's name from the URL.
    if (!step.extract && step.dest.ends_with('/')) kb.add(field::file_name, url_basename(step.url));
    kb.add(field::mode, static_cast<std::int64_t>(step.mode));
    kb.add(field::extract, step.extract ? "yes" : "no");
}

SourceOutcome execute_download(const SourceContext& ctx, const recipe::DownloadStep& step,
                               const std::string& id) {
    sources::DownloadOptions o;
    o.offline = ctx.offline;
    o.ca_bundle = sources::host_ca_bundle();
    o.on_log = ctx.on_log;
    auto file = sources::fetch_download(ctx.store_root, step.url, step.sha256, o);
    if (!file) throw Error(id + ": " + file.error());
    SourceOutcome out;
    if (step.extract) {
        out.scratch = std::make_unique<TempDir>(ctx.store_root / "tmp", "extract-");
        // Named by its URL (without credentials), not by the store's file (its sha256).
        auto entries =
            sources::archive_entries(*file, relative_dest(step.dest), out.scratch->path(),
                                     sources::ArchiveLimits{}, sources::printable_url(step.url));
        if (!entries) throw Error(id + ": " + entries.error());
        out.entries = std::move(*entries);
        return out;
    }
    std::string path = relative_dest(step.dest);
    if (step.dest.ends_with('/')) {
        std::string name = url_basename(step.url);
        if (name.empty() || name == "." || name == "..")
            throw Error(id + ": the URL has no file name; end dest with the file's name",
                        ExitCode::usage);
        path = path.empty() ? name : path + "/" + name;
    }
    if (auto c = layer::check_path(path); !c)
        throw Error(id + ": dest: " + c.error(), ExitCode::usage);
    add_parents(path, out.entries);
    layer::Entry e;
    e.path = path;
    e.mode = step.mode;
    e.source = file->string();
    e.size = fs::file_size(*file);
    out.entries.push_back(std::move(e));
    return out;
}

} // namespace factory::builder
