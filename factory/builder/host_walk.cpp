#include "factory/builder/host_walk.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

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

} // namespace

HostWalk::HostWalk(std::string root, const IgnoreRules* ignore)
    : root_(std::move(root)), ignore_(ignore) {}

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
    if (dents_.empty()) dents_.resize(dents_buffer_size);
    return walk_fd(*dir, visit);
}

Result<void> HostWalk::read_names(int fd, std::string& names,
                                  std::vector<std::string_view>& sorted) {
    std::vector<std::size_t> starts;
    for (;;) {
        auto n = ::getdents64(fd, dents_.data(), dents_.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return Unexpected("cannot read directory " + path_ + ": " + errno_string(errno));
        }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            auto* d = reinterpret_cast<const struct dirent64*>(dents_.data() + off);
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

Result<void> HostWalk::walk_fd(const Fd& dir, const Visitor& visit) {
    std::string names;
    std::vector<std::string_view> sorted;
    if (auto r = read_names(dir.get(), names, sorted); !r) return r;
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

} // namespace factory::builder
