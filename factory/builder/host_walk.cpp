#include "factory/builder/host_walk.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <thread>

#include "factory/layer/entry.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

namespace {

constexpr std::size_t dents_buffer_size = 64 * 1024;

std::size_t prefix_length(const std::string& root) {
    return root == "/" ? 1 : root.size() + 1;
}

std::string stat_error(std::string_view full, int err) {
    std::string msg = "cannot stat " + std::string(full) + ": " + errno_string(err);
    // Listed by getdents64 a moment ago: someone removed or renamed it while the tree was read.
    if (err == ENOENT) msg += " (it was removed while its directory was being read)";
    return msg;
}

// Opens the directory `name` in `parent`, never through a symlink, and checks that it is the
// directory that was lstat'ed (not one swapped in since).
Result<Fd> open_child(int parent, const char* name, const struct stat& st, std::string_view full) {
    Fd fd(::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd)
        return Unexpected("cannot open directory " + std::string(full) + ": " +
                          errno_string(errno));
    struct stat now {};
    if (::fstat(fd.get(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino)
        return Unexpected("directory " + std::string(full) + " changed while it was read");
    return fd;
}

// The names in the directory `fd` (`path` for errors), '\0'-terminated in `names`, and views of
// them in byte order in `sorted`.
Result<void> read_names(int fd, std::vector<char>& dents, const std::string& path,
                        std::string& names, std::vector<std::string_view>& sorted) {
    if (dents.empty()) dents.resize(dents_buffer_size);
    std::vector<std::size_t> starts;
    for (;;) {
        auto n = ::getdents64(fd, dents.data(), dents.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return Unexpected("cannot read directory " + path + ": " + errno_string(errno));
        }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            auto* d = reinterpret_cast<const struct dirent64*>(dents.data() + off);
            off += d->d_reclen;
            std::string_view name(d->d_name);
            if (name == "." || name == "..") continue;
            starts.push_back(names.size());
            names.append(name);
            names.push_back('\0');
        }
    }
    sorted.reserve(starts.size());
    for (auto start : starts)
        sorted.emplace_back(names.data() + start, std::strlen(names.data() + start));
    std::sort(sorted.begin(), sorted.end());
    return {};
}

// The state of a parallel walk (HostWalk::walk_parallel): one Listing per directory met, listed
// by whichever thread claims it first — a worker, or the visitor's thread when it needs one no
// worker has started. Workers take the pending directory the visitor will reach first.
class ParallelWalk {
  public:
    static constexpr std::size_t none = static_cast<std::size_t>(-1);

    struct Listed {
        std::uint32_t name_at = 0, name_len = 0; // in Listing::names
        struct stat st {};
        int stat_errno = 0;       // the walk stops here with this error
        bool shown = true;        // false: ignored, walked only for what a rule may re-include
        std::size_t child = none; // a directory's Listing
        std::optional<Result<std::string>> link; // a symlink's target
    };
    struct Listing {
        std::string rel;            // root-relative
        std::shared_ptr<Fd> parent; // to open it from, until it is listed
        std::string name;           // in parent
        dev_t dev = 0;              // what its lstat in the parent said it is
        ino_t ino = 0;
        std::shared_ptr<Fd> fd; // open while directories below it wait to be opened
        enum class State { pending, claimed, done } state = State::pending;
        std::string error;
        std::string names;
        std::vector<Listed> entries;
    };

    ParallelWalk(const std::string& root, const IgnoreRules* ignore)
        : root_(root), ignore_(ignore) {}
    ~ParallelWalk() { stop(); }
    ParallelWalk(const ParallelWalk&) = delete;
    ParallelWalk& operator=(const ParallelWalk&) = delete;

    // The walk's start, listing 0: `dir`, open, at root-relative `rel`.
    void start(Fd dir, std::string rel) {
        std::lock_guard lock(mutex_);
        Listing& l = listings_.emplace_back();
        l.rel = std::move(rel);
        l.fd = std::make_shared<Fd>(std::move(dir));
    }

    void start_workers(unsigned n) {
        for (unsigned i = 0; i < n; ++i)
            workers_.emplace_back([this] { work(); });
    }

    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& t : workers_)
            t.join();
        workers_.clear();
    }

    // The listing `i`, listed: by this thread if no worker has claimed it yet.
    Listing& get(std::size_t i) {
        std::unique_lock lock(mutex_);
        Listing& l = listings_[i];
        if (l.state == Listing::State::pending) {
            l.state = Listing::State::claimed;
            lock.unlock();
            list(l, dents_);
            lock.lock();
        }
        done_.wait(lock, [&] { return l.state == Listing::State::done; });
        return l;
    }

    bool has_pending() {
        std::lock_guard lock(mutex_);
        return !queue_.empty();
    }

  private:
    struct Later {
        const std::deque<Listing>* all;
        bool operator()(std::size_t a, std::size_t b) const {
            // The walk meets directories in layer::path_less order ("a" < "a/b" < "a-b").
            return layer::path_less((*all)[b].rel, (*all)[a].rel);
        }
    };

    void work() {
        std::vector<char> dents;
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            std::size_t i = queue_.top();
            queue_.pop();
            Listing& l = listings_[i];
            if (l.state != Listing::State::pending) continue; // the visitor took it
            l.state = Listing::State::claimed;
            lock.unlock();
            list(l, dents);
            lock.lock();
        }
    }

    // As walk_fd's path_ spells it.
    std::string full_path(const std::string& rel) const {
        return root_ == "/" ? "/" + rel : root_ + "/" + rel;
    }

    // list_entries, and the listing marked done whatever happens (a worker's exception would
    // end the process; the visitor would wait for ever).
    void list(Listing& l, std::vector<char>& dents) {
        try {
            list_entries(l, dents);
        } catch (const std::exception& e) {
            std::lock_guard lock(mutex_);
            l.entries.clear();
            l.error = "cannot read directory " + full_path(l.rel) + ": " + e.what();
            l.state = Listing::State::done;
            done_.notify_all();
        }
    }

    // Opens (unless open) and reads the directory `l`, lstats its entries and reads its
    // symlinks, queues its directories; then marks it done. What HostWalk::walk_fd does before
    // each visit, for a whole directory.
    void list_entries(Listing& l, std::vector<char>& dents) {
        std::vector<std::size_t> children;
        std::string full = full_path(l.rel);
        if (!l.fd) {
            struct stat expected {};
            expected.st_dev = l.dev;
            expected.st_ino = l.ino;
            auto fd = open_child(l.parent->get(), l.name.c_str(), expected, full);
            l.parent.reset();
            if (fd)
                l.fd = std::make_shared<Fd>(std::move(*fd));
            else
                l.error = fd.error();
        }
        std::vector<std::string_view> sorted;
        if (l.fd) {
            if (auto r = read_names(l.fd->get(), dents, full, l.names, sorted); !r)
                l.error = r.error();
        }
        std::vector<Listing> made; // this directory's directories, queued below
        l.entries.reserve(sorted.size());
        std::string rel;
        for (auto name : sorted) {
            rel = l.rel;
            if (!rel.empty()) rel.push_back('/');
            rel.append(name);
            bool ignored = ignore_ && ignore_->ignored(rel);
            if (ignored && !ignore_->may_reinclude_below(rel)) continue;
            Listed& e = l.entries.emplace_back();
            e.name_at = static_cast<std::uint32_t>(name.data() - l.names.data());
            e.name_len = static_cast<std::uint32_t>(name.size());
            e.shown = !ignored;
            if (::fstatat(l.fd->get(), name.data(), &e.st, AT_SYMLINK_NOFOLLOW) != 0) {
                e.stat_errno = errno;
                break; // the walk ends here
            }
            if (S_ISLNK(e.st.st_mode) && e.shown) {
                e.link = readlink_at(l.fd->get(), name, full_path(rel));
            } else if (S_ISDIR(e.st.st_mode)) {
                Listing& c = made.emplace_back();
                c.rel = rel;
                c.parent = l.fd;
                c.name = std::string(name);
                c.dev = e.st.st_dev;
                c.ino = e.st.st_ino;
                children.push_back(l.entries.size() - 1);
            }
        }
        l.fd.reset(); // open only while a directory below waits to be opened from it
        std::lock_guard lock(mutex_);
        for (std::size_t k = 0; k < made.size(); ++k) {
            l.entries[children[k]].child = listings_.size();
            listings_.push_back(std::move(made[k]));
            queue_.push(listings_.size() - 1);
        }
        l.state = Listing::State::done;
        done_.notify_all();
        if (!made.empty()) wake_.notify_all();
    }

    const std::string& root_;
    const IgnoreRules* ignore_;
    std::mutex mutex_;
    std::condition_variable wake_; // workers: a directory was queued, or the walk stops
    std::condition_variable done_; // the visitor: a listing is done
    std::deque<Listing> listings_; // stable addresses as it grows
    std::priority_queue<std::size_t, std::vector<std::size_t>, Later> queue_{Later{&listings_}};
    bool stopping_ = false;
    std::vector<std::thread> workers_;
    std::vector<char> dents_; // the visitor's thread's buffer
};

} // namespace

HostWalk::HostWalk(std::string root, const IgnoreRules* ignore, unsigned threads)
    : root_(std::move(root)), ignore_(ignore),
      threads_(threads ? threads : std::max(1u, std::thread::hardware_concurrency())) {}

Result<Fd> HostWalk::open_dir(std::string_view rel) {
    Fd fd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return Unexpected("cannot open directory " + root_ + ": " + errno_string(errno));
    std::string component;
    std::string full = root_;
    while (!rel.empty()) {
        auto slash = rel.find('/');
        component = rel.substr(0, slash);
        rel = slash == std::string_view::npos ? std::string_view() : rel.substr(slash + 1);
        if (component.empty()) continue;
        full += (full.ends_with('/') ? "" : "/") + component;
        Fd next(
            ::openat(fd.get(), component.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!next) return Unexpected("cannot open directory " + full + ": " + errno_string(errno));
        fd = std::move(next);
    }
    return fd;
}

Result<struct stat> HostWalk::stat(std::string_view rel) {
    struct stat st {};
    auto slash = rel.rfind('/');
    auto parent = slash == std::string_view::npos ? std::string_view() : rel.substr(0, slash);
    std::string name(slash == std::string_view::npos ? rel : rel.substr(slash + 1));
    std::string full =
        rel.empty() ? root_ : root_.substr(0, prefix_length(root_) - 1) + "/" + std::string(rel);
    auto dir = open_dir(parent);
    if (!dir) return Unexpected(dir.error());
    int rc = name.empty() ? ::fstat(dir->get(), &st)
                          : ::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW);
    if (rc != 0) return Unexpected("cannot stat " + full + ": " + errno_string(errno));
    return st;
}

Result<void> HostWalk::walk(std::string_view rel, const Visitor& visit) {
    auto dir = open_dir(rel);
    if (!dir) return Unexpected(dir.error());
    path_ = root_ == "/" ? "/" : root_ + "/";
    path_ += rel;
    if (threads_ > 1) return walk_parallel(std::move(*dir), rel, visit);
    return walk_fd(*dir, visit);
}

Result<void> HostWalk::walk_parallel(Fd dir, std::string_view rel, const Visitor& visit) {
    ParallelWalk state(root_, ignore_);
    state.start(std::move(dir), std::string(rel));
    const std::size_t prefix = prefix_length(root_);
    bool started = false;
    // Depth first over the listings, as walk_fd goes over the directories.
    std::function<Result<void>(std::size_t)> show = [&](std::size_t i) -> Result<void> {
        auto& l = state.get(i);
        if (!started && state.has_pending()) {
            state.start_workers(threads_);
            started = true;
        }
        if (!l.error.empty()) return Unexpected(l.error);
        const std::size_t base = path_.size();
        for (const auto& e : l.entries) {
            std::string_view name(l.names.data() + e.name_at, e.name_len);
            path_.resize(base);
            if (base > prefix) path_.push_back('/');
            path_.append(name);
            if (e.stat_errno) return Unexpected(stat_error(path_, e.stat_errno));
            std::string_view rel_now = std::string_view(path_).substr(prefix);
            bool is_dir = S_ISDIR(e.st.st_mode);
            if (e.shown && visit(HostEntry{rel_now, path_, name, e.st, -1,
                                           e.link ? &*e.link : nullptr}) == Descend::no)
                continue;
            if (!is_dir || e.child == ParallelWalk::none) continue;
            if (auto r = show(e.child); !r) return r;
        }
        path_.resize(base);
        return {};
    };
    auto r = show(0);
    state.stop();
    return r;
}

Result<void> HostWalk::walk_fd(const Fd& dir, const Visitor& visit) {
    std::string names;
    std::vector<std::string_view> sorted;
    if (auto r = read_names(dir.get(), dents_, path_, names, sorted); !r) return r;
    const std::size_t prefix = prefix_length(root_);
    const std::size_t base = path_.size();
    for (auto name : sorted) {
        path_.resize(base);
        if (base > prefix) path_.push_back('/');
        path_.append(name);
        std::string_view rel = std::string_view(path_).substr(prefix);
        bool ignored = ignore_ && ignore_->ignored(rel);
        if (ignored && !ignore_->may_reinclude_below(rel)) continue;
        struct stat st {};
        if (::fstatat(dir.get(), name.data(), &st, AT_SYMLINK_NOFOLLOW) != 0)
            return Unexpected(stat_error(path_, errno));
        bool is_dir = S_ISDIR(st.st_mode);
        // An ignored directory that a rule may re-include below: walked, but not shown.
        if (!ignored && visit(HostEntry{rel, path_, name, st, dir.get()}) == Descend::no) continue;
        if (!is_dir) continue;
        auto child = open_child(dir.get(), name.data(), st, path_);
        if (!child) return Unexpected(child.error());
        if (auto r = walk_fd(*child, visit); !r) return r;
    }
    path_.resize(base);
    return {};
}

Result<std::string> readlink_at(int dir_fd, std::string_view name, std::string_view full) {
    std::string buf(PATH_MAX, '\0');
    std::string cname(name);
    auto n = ::readlinkat(dir_fd, cname.c_str(), buf.data(), buf.size());
    if (n < 0)
        return Unexpected("cannot read link " + std::string(full) + ": " + errno_string(errno));
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

Result<std::string> link_target(const HostEntry& e) {
    if (e.link) return *e.link;
    return readlink_at(e.dir_fd, e.name, e.full);
}

} // namespace factory::builder
