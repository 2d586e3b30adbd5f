#include "factory/runtime/in_root.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <deque>

namespace factory::runtime {

namespace {

constexpr int max_symlinks = 40; // the kernel's MAXSYMLINKS

thread_local int last_errno = 0;

Unexpected fail(std::string_view path, int err) {
    last_errno = err;
    return Unexpected(std::string(path.empty() ? "." : path) + ": " + errno_string(err));
}

// -1 with errno set, like the syscall.
int sys_openat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t resolve) {
    open_how how{};
    how.flags = flags;
    how.resolve = resolve;
    return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

int openat2_dir(int root_fd, const std::string& rel) {
    return sys_openat2(root_fd, rel.empty() ? "." : rel.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC,
                       RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

// The walk: a stack of directory fds from the root down (the root itself is not owned), and a
// queue of components still to resolve. A symlink's target is pushed in front of the queue; an
// absolute target empties the stack (back to the root); ".." pops, never below the root.
Result<Fd> walk(int root_fd, std::string_view rel, bool create_missing) {
    std::deque<std::string> todo;
    for (auto c : split_path(rel))
        todo.emplace_back(c);
    std::vector<Fd> stack;
    int links = 0;
    std::string done; // for error messages: the resolved path so far
    auto current = [&] { return stack.empty() ? root_fd : stack.back().get(); };

    while (!todo.empty()) {
        std::string c = std::move(todo.front());
        todo.pop_front();
        if (c == ".") continue;
        if (c == "..") {
            if (!stack.empty()) stack.pop_back();
            auto slash = done.rfind('/');
            done.erase(slash == std::string::npos ? 0 : slash);
            continue;
        }
        std::string here = done.empty() ? c : done + "/" + c;
        Fd fd(::openat(current(), c.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (!fd && errno == ENOENT && create_missing) {
            if (::mkdirat(current(), c.c_str(), 0755) != 0 && errno != EEXIST)
                return fail(here, errno);
            fd.reset(::openat(current(), c.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        }
        if (!fd) return fail(here, errno);
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return fail(here, errno);
        if (S_ISDIR(st.st_mode)) {
            stack.push_back(std::move(fd));
            done = std::move(here);
            continue;
        }
        if (!S_ISLNK(st.st_mode)) return fail(here, ENOTDIR);
        if (++links > max_symlinks) return fail(here, ELOOP);
        auto target = read_link_fd(fd.get());
        if (!target) return Unexpected(here + ": " + target.error());
        if (target->empty()) return fail(here, ENOENT);
        auto parts = split_path(*target);
        for (auto it = parts.rbegin(); it != parts.rend(); ++it)
            todo.emplace_front(*it);
        if ((*target)[0] == '/') {
            stack.clear();
            done.clear();
        }
    }
    if (stack.empty()) {
        Fd fd(::openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!fd) return fail("", errno);
        return fd;
    }
    return std::move(stack.back());
}

Result<Fd> open_dir_in_root_impl(int root_fd, std::string_view rel, Resolver resolver,
                                 bool create_missing);

} // namespace

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> out;
    while (!path.empty()) {
        auto slash = path.find('/');
        auto c = path.substr(0, slash);
        if (!c.empty()) out.push_back(c);
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return out;
}

bool have_openat2() noexcept {
    // 1 yes, 0 no, -1 not probed. Probing twice in a race is harmless.
    static std::atomic<int> state{-1};
    int s = state.load(std::memory_order_relaxed);
    if (s < 0) {
        int fd = sys_openat2(AT_FDCWD, "/", O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT);
        s = fd >= 0 || errno != ENOSYS ? 1 : 0;
        if (fd >= 0) ::close(fd);
        state.store(s, std::memory_order_relaxed);
    }
    return s == 1;
}

Result<std::string> read_link_fd(int fd) {
    std::string buf(256, '\0');
    for (;;) {
        ssize_t n = ::readlinkat(fd, "", buf.data(), buf.size());
        if (n < 0) {
            last_errno = errno;
            return Unexpected("readlink: " + errno_string(errno));
        }
        if (static_cast<std::size_t>(n) < buf.size()) {
            buf.resize(static_cast<std::size_t>(n));
            return buf;
        }
        if (buf.size() > 65536) return Unexpected("readlink: target too long");
        buf.resize(buf.size() * 4);
    }
}

Result<Fd> open_dir_in_root(int root_fd, std::string_view rel, Resolver resolver,
                            bool create_missing, int* err_out) {
    last_errno = 0;
    auto r = open_dir_in_root_impl(root_fd, rel, resolver, create_missing);
    if (!r && err_out) *err_out = last_errno ? last_errno : EINVAL;
    return r;
}

namespace {
Result<Fd> open_dir_in_root_impl(int root_fd, std::string_view rel, Resolver resolver,
                                 bool create_missing) {
    bool use_openat2 =
        resolver == Resolver::openat2 || (resolver == Resolver::automatic && have_openat2());
    if (resolver == Resolver::openat2 && !have_openat2())
        return Unexpected("openat2 is not available on this kernel");
    if (use_openat2) {
        std::string path(rel);
        Fd fd(openat2_dir(root_fd, path));
        if (fd) return fd;
        int err = errno;
        // EAGAIN: a concurrent rename elsewhere on the system; retry once, then walk.
        if (err == EAGAIN) {
            fd.reset(openat2_dir(root_fd, path));
            if (fd) return fd;
            err = errno;
        }
        if (!(err == ENOENT && create_missing) && err != EAGAIN) return fail(rel, err);
        // Missing directories: the walk creates them (rare; tar lists parents first).
    }
    return walk(root_fd, rel, create_missing);
}
} // namespace

namespace detail {

Result<std::vector<DirEntryName>> list_dir(int dirfd) {
    // fdopendir takes ownership of its fd: give it a fresh one on the same directory.
    int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dup < 0) return Unexpected("opendir: " + errno_string(errno));
    DIR* d = ::fdopendir(dup);
    if (!d) {
        int err = errno;
        ::close(dup);
        return Unexpected("opendir: " + errno_string(err));
    }
    std::vector<DirEntryName> out;
    errno = 0;
    while (dirent* de = ::readdir(d)) {
        std::string_view name = de->d_name;
        if (name == "." || name == "..") continue;
        bool is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st {};
            is_dir =
                ::fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        out.push_back({std::string(name), is_dir});
        errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err) return Unexpected("readdir: " + errno_string(err));
    return out;
}

Result<Fd> open_subdir_nofollow(int dirfd, const std::string& name) {
    Fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Unexpected(name + ": " + errno_string(errno));
    return fd;
}

} // namespace detail

Result<void> remove_at(int dirfd, const std::string& name) {
    if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return {};
    if (errno != EISDIR && errno != EPERM) return Unexpected(name + ": " + errno_string(errno));
    // A directory (Linux says EISDIR; POSIX allows EPERM): empty it by fd, then rmdir.
    auto sub = detail::open_subdir_nofollow(dirfd, name);
    if (!sub) return Unexpected(sub.error());
    auto entries = detail::list_dir(sub->get());
    if (!entries) return Unexpected(name + ": " + entries.error());
    for (const auto& e : *entries)
        if (auto r = remove_at(sub->get(), e.name); !r) return Unexpected(name + "/" + r.error());
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        return Unexpected(name + ": " + errno_string(errno));
    return {};
}

} // namespace factory::runtime
