#include "factory/builder/copy.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <set>

#include "factory/builder/host_walk.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

namespace {

using layer::Entry;

using layer::path_less;

// The entries a step plans, each with the lstat of the host file it is read from (st_mode 0 for
// every other entry): flat arrays, in the order they were added. A walk adds them in canonical
// order (host_walk.hpp), so the usual plan is already sorted and is handed on as it is; only
// when sources overlap or come out of order does finish() sort them.
class Plan {
    // What the stat cache compares of a host file's lstat (StatCache::get): a third of a
    // struct stat, which counts when the plan grows by 20,000 files.
    struct Stamp {
        dev_t dev = 0;
        ino_t ino = 0;
        off_t size = 0;
        timespec mtime{};
        timespec ctime{};
        mode_t mode = 0;
    };
    static Stamp stamp_of(const struct stat* st) {
        if (!st) return {};
        return {st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim, st->st_mode};
    }

  public:
    // Later entries of one path replace earlier ones (a later item overrides an earlier one).
    void add(Entry e, const struct stat* st) {
        if (!entries_.empty() && !path_less(entries_.back().path, e.path)) {
            if (entries_.back().path == e.path) {
                entries_.back() = std::move(e);
                stats_.back() = stamp_of(st);
                return;
            }
            sorted_ = false;
        }
        entries_.push_back(std::move(e));
        stats_.push_back(stamp_of(st));
    }

    // Sorts into canonical order, keeping the last entry added of each path.
    void finish() {
        if (sorted_) return;
        std::vector<std::size_t> order(entries_.size());
        for (std::size_t i = 0; i < order.size(); ++i)
            order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return path_less(entries_[a].path, entries_[b].path);
        });
        std::vector<Entry> entries;
        std::vector<Stamp> stats;
        entries.reserve(order.size());
        stats.reserve(order.size());
        for (std::size_t k = 0; k < order.size(); ++k) {
            if (k + 1 < order.size() && entries_[order[k]].path == entries_[order[k + 1]].path)
                continue; // replaced by a later one
            entries.push_back(std::move(entries_[order[k]]));
            stats.push_back(stats_[order[k]]);
        }
        entries_ = std::move(entries);
        stats_ = std::move(stats);
        sorted_ = true;
    }

    // After finish(): the entry at `path`, or nullptr.
    Entry* find(std::string_view path) {
        auto it = std::lower_bound(
            entries_.begin(), entries_.end(), path,
            [](const Entry& e, std::string_view p) { return path_less(e.path, p); });
        return it != entries_.end() && it->path == path ? &*it : nullptr;
    }

    // After finish(): adds entries of paths not planned yet, sorted by path_less, in one
    // merge from the back (no second copy of the plan).
    void merge(std::vector<Entry> more) {
        std::size_t i = entries_.size(), j = more.size();
        entries_.resize(i + j);
        stats_.resize(i + j);
        for (std::size_t k = i + j; j > 0;) {
            --k;
            if (i > 0 && path_less(more[j - 1].path, entries_[i - 1].path)) {
                --i;
                entries_[k] = std::move(entries_[i]);
                stats_[k] = stats_[i];
            } else {
                --j;
                entries_[k] = std::move(more[j]);
                stats_[k] = {};
            }
        }
    }

    std::vector<Entry>& entries() noexcept { return entries_; }
    // One lstat per entry (CopyContext::stats): a host file's, st_mode 0 for any other entry.
    std::vector<struct stat> stats() const {
        std::vector<struct stat> out(entries_.size());
        for (std::size_t i = 0; i < out.size(); ++i) {
            if (entries_[i].type != Entry::Type::file) continue;
            const Stamp& s = stats_[i];
            out[i].st_dev = s.dev;
            out[i].st_ino = s.ino;
            out[i].st_size = s.size;
            out[i].st_mtim = s.mtime;
            out[i].st_ctim = s.ctime;
            out[i].st_mode = s.mode;
        }
        return out;
    }

  private:
    std::vector<Entry> entries_;
    std::vector<Stamp> stats_;
    bool sorted_ = true;
};

std::string join(const std::string& dir, const std::string& name) {
    if (dir.empty()) return name;
    if (name.empty()) return dir;
    return dir + "/" + name;
}

std::string basename_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// The layer-relative form of an absolute image path: "/usr/bin/" → "usr/bin".
std::string image_relative(const std::string& dest) {
    return clean_relative(dest);
}

const char* type_name(mode_t mode) {
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "a special file";
}

// What the step is building: entries by path, later items overriding earlier ones.
[[noreturn]] void fail(const recipe::CopyItem& item, const std::string& what,
                       ExitCode code = ExitCode::usage) {
    throw Error(item.where.str() + ": copy: " + what, code);
}

class Collector {
  public:
    Collector(const recipe::CopyItem& item, const CopyContext& ctx) : item_(item), ctx_(ctx) {}

    // Two sources of one item that write one path are an error, whatever their order would
    // make of it (BuildKit overwrites silently); two directories merge. One source never
    // writes a path twice, so an item of one source keeps no claims.
    void add(Entry e, const struct stat* st = nullptr) {
        if (item_.uid) e.uid = *item_.uid;
        if (item_.gid) e.gid = *item_.gid;
        if (item_.mode && e.type != Entry::Type::symlink) e.mode = *item_.mode;
        if (track_claims_) claim(e);
        if (e.path.empty()) return; // the root itself is never an entry
        out_->add(std::move(e), st);
    }
    void set_output(Plan* out) { out_ = out; }
    // The source (as matched) that the next entries come from, for the collision error.
    void set_origin(std::string origin) { origin_ = std::move(origin); }
    // How many sources the item has (claims are kept only for more than one).
    void set_sources(std::size_t n) { track_claims_ = n > 1; }
    const recipe::CopyItem& item() const { return item_; }
    const CopyContext& ctx() const { return ctx_; }

  private:
    const recipe::CopyItem& item_;
    const CopyContext& ctx_;
    void claim(const Entry& e) {
        bool is_dir = e.type == Entry::Type::dir;
        auto [it, fresh] = claimed_.emplace(e.path, std::pair{origin_, is_dir});
        if (!fresh && !(is_dir && it->second.second))
            fail(item_, "'" + it->second.first + "' and '" + origin_ +
                            "' would both be copied to /" + e.path);
    }

    Plan* out_ = nullptr;
    std::string origin_;
    bool track_claims_ = true;
    std::map<std::string, std::pair<std::string, bool>> claimed_; // path → (origin, is_dir)
};

// The components of a clean pattern before its first one with glob characters ("t/a/*.txt"
// → "t/a"; "*.txt" → "").
std::string literal_prefix(const std::string& clean) {
    std::string prefix;
    for (std::size_t start = 0; start < clean.size();) {
        auto end = clean.find('/', start);
        if (end == std::string::npos) end = clean.size();
        auto part = clean.substr(start, end - start);
        if (has_glob_chars(part)) break;
        prefix = join(prefix, part);
        start = end + 1;
    }
    return prefix;
}

// Where a match `rel` of `pattern` goes when the item copies into the directory dest
// (docs/recipe.md "Globs"): a pattern with `**` keeps the match's path below the pattern's
// literal prefix (as BuildKit's `COPY --parents` with its `./` pivot there); any other keeps
// the match's name, and a matched directory's contents go into dest, as Docker's COPY does.
std::string match_target(const std::string& pattern, const std::string& rel, bool is_dir,
                         const std::string& dest) {
    std::string clean = clean_relative(pattern);
    if (has_glob_chars(clean) && clean.find("**") != std::string::npos) {
        auto prefix = literal_prefix(clean);
        return join(dest, prefix.empty() ? rel : rel.substr(prefix.size() + 1));
    }
    return is_dir ? dest : join(dest, basename_of(rel));
}

// A glob with several matches needs a directory dest, as several sources do (stage_reader).
void check_matches(const recipe::CopyItem& item, const std::string& pattern,
                   const std::vector<std::string>& matches) {
    if (matches.size() < 2 || item.dest.ends_with("/")) return;
    fail(item, "'" + pattern + "' matches " + std::to_string(matches.size()) + " sources ('" +
                   matches[0] + "', '" + matches[1] + "'" + (matches.size() > 2 ? ", …" : "") +
                   "): copying several sources needs a directory dest ending in '/': \"" +
                   item.dest + "\"");
}

// Each of item's patterns expanded (expand(pattern) → its matches, each checked), and the sources
// they make told to the collector: the matches, one list per pattern, in the item's order.
template <class Expand>
std::vector<std::vector<std::string>> expand_sources(const recipe::CopyItem& item,
                                                     Collector& collector, Expand&& expand) {
    std::vector<std::vector<std::string>> all;
    std::size_t sources = 0;
    for (const auto& pattern : item.src) {
        all.push_back(expand(pattern));
        check_matches(item, pattern, all.back());
        sources += all.back().size();
    }
    collector.set_sources(sources);
    return all;
}

// ---- host sources ---------------------------------------------------------------------------

struct HostRoot {
    std::filesystem::path real; // realpath of the root
    std::string label;          // "the context" or "context 'tools'"
    const IgnoreRules* ignore = nullptr;
};

// Resolves `rel` under the root, following symlinks, and checks the result stays inside.
// Returns the path relative to the root ("" for the root itself).
std::string resolve_inside(const HostRoot& root, const std::string& rel,
                           const recipe::CopyItem& item) {
    auto full = root.real / rel;
    char buf[PATH_MAX];
    if (!::realpath(full.c_str(), buf)) {
        int err = errno;
        if (err == ENOENT || err == ENOTDIR)
            fail(item, "source '" + rel + "' does not exist in " + root.label + " (" +
                           root.real.string() + ")");
        fail(item, "cannot resolve '" + rel + "' in " + root.label + ": " + errno_string(err),
             ExitCode::failure);
    }
    std::string real = buf;
    const std::string& base = root.real.string();
    if (real == base) return "";
    if (real.size() > base.size() && real.compare(0, base.size(), base) == 0 &&
        (base == "/" || real[base.size()] == '/'))
        return real.substr(base == "/" ? 1 : base.size() + 1);
    fail(item, "source '" + rel + "' resolves to " + real + ", outside " + root.label + " (" +
                   base + "); declare a [contexts] entry to copy from there");
}

using InodeMap = std::map<std::pair<dev_t, ino_t>, std::vector<std::string>>;

class HostWalker {
  public:
    HostWalker(const HostRoot& root, Collector& out, InodeMap& inodes, unsigned threads)
        : root_(root), out_(out), links_(inodes), walk_(root.real.string(), root.ignore, threads) {}

    // Adds the file or tree at root-relative `rel` (already resolved) as `target`.
    void add(const std::string& rel, const std::string& target) {
        auto st = walk_.stat(rel);
        if (!st) fail(out_.item(), st.error(), ExitCode::failure);
        auto full = (root_.real / rel).string();
        add_entry(HostEntry{rel, full, full, *st, AT_FDCWD}, target);
    }

  private:
    Entry dir_entry(const std::string& target) {
        Entry e;
        e.path = target;
        e.type = Entry::Type::dir;
        e.mode = normalized_mode(0, true);
        return e;
    }

    // One entry, as a walk shows it (or, for a source itself, with its full path as its name
    // and AT_FDCWD as its directory). A directory's contents follow it.
    void add_entry(const HostEntry& h, const std::string& target) {
        const struct stat& st = h.st;
        if (S_ISDIR(st.st_mode)) {
            if (!target.empty()) out_.add(dir_entry(target));
            if (h.dir_fd == AT_FDCWD) walk_dir(std::string(h.rel), target);
            return;
        }
        Entry e;
        e.path = target;
        if (S_ISREG(st.st_mode)) {
            e.type = Entry::Type::file;
            e.mode = normalized_mode(st.st_mode, false);
            e.size = static_cast<std::uint64_t>(st.st_size);
            e.source = h.full;
            if (st.st_nlink > 1) links_[{st.st_dev, st.st_ino}].push_back(target);
        } else if (S_ISLNK(st.st_mode)) {
            e.type = Entry::Type::symlink;
            e.mode = 0777;
            auto link = link_target(h);
            if (!link) fail(out_.item(), link.error(), ExitCode::failure);
            e.link = std::move(*link);
        } else {
            fail(out_.item(), "'" + std::string(h.rel) + "' in " + root_.label + " is " +
                                  type_name(st.st_mode) +
                                  "; only files, directories and symlinks can be copied");
        }
        out_.add(std::move(e), &st);
    }

    // Everything below the directory `rel`, as `target`'s contents. Directories are shown
    // before their contents, so the target of a child is its parent's target and its name.
    void walk_dir(const std::string& rel, const std::string& target) {
        const std::size_t skip = rel.empty() ? 0 : rel.size() + 1;
        std::string child_target;
        auto walked = walk_.walk(rel, [&](const HostEntry& h) {
            child_target = target;
            if (!child_target.empty()) child_target.push_back('/');
            child_target.append(h.rel.substr(skip));
            add_entry(h, child_target);
            return S_ISDIR(h.st.st_mode) ? Descend::yes : Descend::no;
        });
        if (!walked) fail(out_.item(), walked.error(), ExitCode::failure);
    }

    const HostRoot& root_;
    Collector& out_;
    InodeMap& links_; // host files with more than one link, by inode
    HostWalk walk_;
};

// Expands `pattern` (relative, maybe a glob) to root-relative paths, sorted.
std::vector<std::string> expand_host(const HostRoot& root, const std::string& pattern,
                                     const recipe::CopyItem& item) {
    std::string clean = clean_relative(pattern);
    if (!has_glob_chars(clean)) return {clean};
    // Walk from the longest literal prefix; match every path below it.
    std::string prefix = literal_prefix(clean);
    std::vector<std::string> matches;
    std::function<void(const std::string&)> walk = [&](const std::string& rel) {
        auto dir = root.real / rel;
        std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
        if (!d) return;
        std::vector<std::pair<std::string, bool>> children;
        while (auto* ent = ::readdir(d.get())) {
            std::string name = ent->d_name;
            if (name == "." || name == "..") continue;
            struct stat st {};
            auto child = join(rel, name);
            bool is_dir = ::lstat((root.real / child).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
            children.emplace_back(child, is_dir);
        }
        std::sort(children.begin(), children.end());
        for (const auto& [child, is_dir] : children) {
            if (root.ignore && root.ignore->ignored(child)) continue;
            if (path_match(clean, child)) {
                matches.push_back(child);
                continue;
            }
            if (is_dir) walk(child);
        }
    };
    walk(prefix);
    if (matches.empty()) fail(item, "no source in " + root.label + " matches '" + pattern + "'");
    return matches;
}

// ---- stage sources --------------------------------------------------------------------------

void add_from_tree(const Tree& tree, const std::string& rel, const std::string& target,
                   Collector& out, const std::string& stage) {
    auto resolved = tree.resolve(rel);
    const Entry* top = resolved ? tree.find(*resolved) : nullptr;
    if (!top && rel.empty()) {
        static const Entry root_entry = [] {
            Entry e;
            e.type = Entry::Type::dir;
            e.mode = 0755;
            return e;
        }();
        top = &root_entry;
        resolved = "";
    }
    if (!top) fail(out.item(), "source '" + rel + "' does not exist in stage '" + stage + "'");
    // The copies, each with the tree path its content is at (files only), so that the
    // content of all of them is taken from the layers in one pass (Tree::contents).
    std::vector<std::pair<Entry, std::string>> copies;
    auto copy_one = [&](const Entry& e, const std::string& to) {
        Entry c = e;
        std::string from = e.path;
        c.path = to;
        c.uid = 0;
        c.gid = 0;
        if (e.type == Entry::Type::hardlink) {
            // Keep the link when its target is copied too; otherwise copy the content.
            const std::string& src_dir = *resolved;
            if (!src_dir.empty() && e.link.starts_with(src_dir + "/")) {
                c.link = join(target, e.link.substr(src_dir.size() + 1));
            } else if (const Entry* t = tree.find(e.link)) {
                c = *t;
                from = t->path;
                c.path = to;
                c.uid = c.gid = 0;
            }
        }
        if (c.type != Entry::Type::file) from.clear();
        copies.emplace_back(std::move(c), std::move(from));
    };
    if (top->type != Entry::Type::dir) {
        copy_one(*top, target);
    } else {
        if (!target.empty()) copy_one(*top, target);
        for (const Entry* e : tree.below(*resolved)) {
            auto sub = resolved->empty() ? e->path : e->path.substr(resolved->size() + 1);
            copy_one(*e, join(target, sub));
        }
    }
    auto* later = out.ctx().content_later;
    std::vector<std::string> from_layers;
    for (const auto& [c, from] : copies)
        if (!from.empty() && c.source.empty() && !(later && !c.sha256.empty()))
            from_layers.push_back(from);
    auto contents = tree.contents(from_layers);
    for (auto& [c, from] : copies) {
        if (auto it = contents.find(from); !from.empty() && it != contents.end())
            c.source = it->second;
        else if (!from.empty() && c.source.empty() && later && !c.sha256.empty())
            (*later)[c.path] = {&tree, from};
        out.add(std::move(c));
    }
}

std::vector<std::string> expand_tree(const Tree& tree, const std::string& pattern,
                                     const recipe::CopyItem& item, const std::string& stage) {
    std::string clean = clean_relative(pattern);
    if (!has_glob_chars(clean)) return {clean};
    std::vector<std::string> matches;
    std::string skip_below;
    for (const auto& [path, e] : tree.entries()) {
        if (!skip_below.empty() && path.starts_with(skip_below + "/")) continue;
        if (path_match(clean, path)) {
            matches.push_back(path);
            skip_below = path;
        }
    }
    if (matches.empty()) fail(item, "no source in stage '" + stage + "' matches '" + pattern + "'");
    return matches;
}

// ---- destinations ---------------------------------------------------------------------------

// The real layer path of `dest` in the stage: symlinked parents (e.g. /bin → usr/bin) are
// resolved through the stage's tree, as a runtime would see them.
std::string resolve_dest(const CopyContext& ctx, const std::string& dest) {
    std::string rel = image_relative(dest);
    if (!ctx.lower || rel.empty()) return rel;
    auto parent = parent_of(rel);
    if (parent.empty()) return rel;
    auto real_parent = ctx.lower->resolve(parent);
    return real_parent ? join(*real_parent, basename_of(rel)) : rel;
}

void add_parents(Plan& plan, const CopyContext& ctx) {
    std::vector<std::string> missing;
    auto parent_view = [](std::string_view p) {
        auto slash = p.rfind('/');
        return slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
    };
    // Entries come in canonical order, so siblings follow each other: a parent seen for the
    // entry before (and so its own parents) needs no second search.
    std::string_view seen;
    for (const auto& e : plan.entries()) {
        for (auto p = parent_view(e.path); !p.empty(); p = parent_view(p)) {
            if (p == seen) break;
            if (plan.find(p)) break;
            missing.emplace_back(p);
        }
        seen = parent_view(e.path);
    }
    std::sort(missing.begin(), missing.end(), path_less);
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    std::vector<Entry> dirs;
    dirs.reserve(missing.size());
    for (auto& p : missing) {
        Entry dir;
        dir.path = std::move(p);
        dir.type = Entry::Type::dir;
        dir.mode = 0755;
        if (const Entry* lower = ctx.lower ? ctx.lower->find(dir.path) : nullptr;
            lower && lower->type == Entry::Type::dir) {
            dir.mode = lower->mode;
            dir.uid = lower->uid;
            dir.gid = lower->gid;
            dir.xattrs = lower->xattrs;
        }
        dirs.push_back(std::move(dir));
    }
    plan.merge(std::move(dirs));
}

// The root a host item copies from: the context or a named one, resolved.
HostRoot host_root(const recipe::CopyItem& item, const CopyContext& ctx) {
    HostRoot root;
    if (item.context.empty()) {
        root.real = ctx.context;
        root.label = "the context";
        root.ignore = ctx.ignore;
    } else {
        auto it = ctx.named ? ctx.named->find(item.context) : decltype(ctx.named->end()){};
        if (!ctx.named || it == ctx.named->end())
            fail(item, "no context named '" + item.context + "' in [contexts]");
        root.real = it->second;
        root.label = "context '" + item.context + "'";
    }
    char buf[PATH_MAX];
    if (!::realpath(root.real.c_str(), buf))
        fail(item,
             "cannot open " + root.label + " " + root.real.string() + ": " + errno_string(errno));
    root.real = buf;
    return root;
}

// A host source resolved inside its root (resolve_inside); one the ignore file excludes is an
// error too.
std::string resolve_host_source(const HostRoot& root, const std::string& rel,
                                const recipe::CopyItem& item) {
    if (root.ignore && !rel.empty() && root.ignore->ignored(rel))
        fail(item, "source '" + rel + "' is excluded by the ignore file");
    return resolve_inside(root, rel, item);
}

void copy_item(const recipe::CopyItem& item, const CopyContext& ctx, Plan& out, InodeMap& inodes) {
    Collector collector(item, ctx);
    collector.set_output(&out);
    bool dest_dir = item.dest.ends_with("/") || item.src.size() > 1;
    std::string dest = resolve_dest(ctx, item.dest);

    if (!item.from_stage.empty()) {
        const Tree* tree = ctx.stage_tree ? ctx.stage_tree(item.from_stage) : nullptr;
        if (!tree) fail(item, "stage '" + item.from_stage + "' has not been built");
        auto all = expand_sources(item, collector, [&](const std::string& pattern) {
            return expand_tree(*tree, pattern, item, item.from_stage);
        });
        for (std::size_t p = 0; p < item.src.size(); ++p) {
            const auto& pattern = item.src[p];
            for (const auto& rel : all[p]) {
                auto resolved = tree->resolve(rel);
                const Entry* e = resolved ? tree->find(*resolved) : nullptr;
                bool is_dir = rel.empty() || (e && e->type == Entry::Type::dir);
                auto target = dest_dir ? match_target(pattern, rel, is_dir, dest) : dest;
                collector.set_origin(rel);
                add_from_tree(*tree, rel, target, collector, item.from_stage);
            }
        }
        return;
    }

    HostRoot root = host_root(item, ctx);
    HostWalker walker(root, collector, inodes, ctx.threads);
    auto all = expand_sources(item, collector, [&](const std::string& pattern) {
        return expand_host(root, pattern, item);
    });
    for (std::size_t p = 0; p < item.src.size(); ++p) {
        const auto& pattern = item.src[p];
        for (const auto& rel : all[p]) {
            auto real = resolve_host_source(root, rel, item);
            struct stat st {};
            ::stat((root.real / real).c_str(), &st);
            bool is_dir = S_ISDIR(st.st_mode);
            auto target = dest_dir ? match_target(pattern, rel, is_dir, dest) : dest;
            collector.set_origin(rel);
            if (!is_dir && target.empty())
                fail(item,
                     "cannot copy file '" + rel + "' onto '/'; give a file or directory dest");
            walker.add(real, target);
        }
    }
}

// Host files sharing an inode: the first path (in layer order) keeps the content, the
// others become hardlinks to it, as `tar` would write them.
void link_shared_inodes(Plan& out, const InodeMap& inodes) {
    for (const auto& [inode, paths] : inodes) {
        // Copies of one host file with different metadata (two items, one with a mode
        // override) can't share an inode in the image: group by metadata too.
        std::map<std::tuple<unsigned, std::uint32_t, std::uint32_t>, std::vector<std::string>>
            groups;
        for (const auto& p : paths) {
            const Entry* e = out.find(p);
            if (!e || e->type != Entry::Type::file) continue;
            groups[{e->mode, e->uid, e->gid}].push_back(p);
        }
        for (auto& [meta, live] : groups) {
            if (live.size() < 2) continue;
            std::sort(live.begin(), live.end(), path_less);
            for (std::size_t i = 1; i < live.size(); ++i) {
                Entry& e = *out.find(live[i]);
                e.type = Entry::Type::hardlink;
                e.link = live.front();
                e.source.clear();
                e.size = 0;
            }
        }
    }
}

} // namespace

unsigned normalized_mode(unsigned host_mode, bool is_dir) {
    if (is_dir) return 0755;
    return (host_mode & 0111) ? 0755 : 0644;
}

IgnoreRules recipe_ignore_rules(const recipe::Recipe& recipe) {
    if (recipe.ignore_file.empty()) return {};
    auto path = recipe.context / recipe.ignore_file;
    auto text = read_file(path, 1 << 20);
    if (!text) throw Error("cannot read ignore file: " + text.error(), ExitCode::usage);
    return IgnoreRules::parse(*text, path.string());
}

void check_host_sources(const recipe::Step& step, const CopyContext& ctx) {
    for (const auto& item : step.copy) {
        if (!item.from_stage.empty()) continue;
        auto root = host_root(item, ctx);
        for (const auto& pattern : item.src) {
            std::string clean = clean_relative(pattern);
            if (!has_glob_chars(clean)) resolve_host_source(root, clean, item);
        }
    }
}

std::vector<layer::Entry> plan_copy(const recipe::Step& step, const CopyContext& ctx) {
    Plan plan;
    InodeMap inodes;
    for (const auto& item : step.copy)
        copy_item(item, ctx, plan, inodes);
    plan.finish();
    link_shared_inodes(plan, inodes);
    add_parents(plan, ctx);
    if (ctx.stats) *ctx.stats = plan.stats();
    return std::move(plan.entries());
}

} // namespace factory::builder
