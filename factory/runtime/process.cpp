#include "factory/runtime/process.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

extern char** environ;

namespace factory::runtime {

namespace fs = std::filesystem;

namespace {

// What the child reports through the error pipe before _exit(127): the step and errno.
struct ChildError {
    int step;
    int err;
};
const char* const steps[] = {
    "fork", "unshare the mount namespace", "make mounts private", "hide a mount", "set up stdio",
    "exec"};

// Between fork and exec only async-signal-safe calls: every string was prepared before fork.
[[noreturn]] void child(const SpawnOptions& o, char* const* argv, int err_fd, pid_t parent,
                        int null_fd) {
    auto fail = [&](int step) {
        ChildError e{step, errno};
        (void)!::write(err_fd, &e, sizeof e);
        ::_exit(127);
    };
    if (o.die_with_parent) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127); // the parent died before prctl
    }
    // Default signal dispositions and an empty mask: the runtime forwards signals to the
    // container and must receive them whatever our threads block or ignore.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    if (!o.hide_mounts.empty()) {
        if (::unshare(CLONE_NEWNS) != 0) fail(1);
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail(2);
        for (const auto& m : o.hide_mounts)
            if (::umount2(m.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
                fail(3);
    }
    int in = o.stdin_fd >= 0 ? o.stdin_fd : null_fd;
    int out = o.stdout_fd == -1 ? null_fd : o.stdout_fd;
    int err = o.stderr_fd == -1 ? null_fd : o.stderr_fd;
    if (::dup2(in, 0) < 0) fail(4);
    if (out >= 0 && ::dup2(out, 1) < 0) fail(4);
    if (err >= 0 && ::dup2(err, 2) < 0) fail(4);
    // Nothing else leaks into the runtime (and through it into the container).
    ::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
    ::fcntl(err_fd, F_SETFD, FD_CLOEXEC);
    ::execve(argv[0], argv, environ);
    fail(5);
    ::_exit(127);
}

} // namespace

fs::path find_program(const std::string& name) {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH"))
        for (std::string_view rest = path; !rest.empty();) {
            auto colon = rest.find(':');
            dirs.emplace_back(rest.substr(0, colon));
            rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
        }
    for (const char* d :
         {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"})
        dirs.emplace_back(d);
    for (const auto& d : dirs) {
        if (d.empty()) continue;
        fs::path p = fs::path(d) / name;
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0)
            return p;
    }
    return {};
}

Result<pid_t> spawn(const SpawnOptions& o) {
    if (o.argv.empty()) return Unexpected("spawn: no program");
    std::vector<char*> argv;
    for (const auto& a : o.argv)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return Unexpected("pipe: " + errno_string(errno));
    Fd rd(pipefd[0]), wr(pipefd[1]);
    Fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null_fd) return Unexpected("/dev/null: " + errno_string(errno));
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return Unexpected("fork: " + errno_string(errno));
    if (pid == 0) child(o, argv.data(), wr.get(), parent, null_fd.get());
    wr.reset();
    ChildError e{};
    ssize_t n;
    do
        n = ::read(rd.get(), &e, sizeof e);
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof e)) {
        int status;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return Unexpected("cannot run " + o.argv[0] + ": " + steps[e.step] + ": " +
                          errno_string(e.err));
    }
    return pid;
}

Result<int> wait_exit(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return Unexpected("waitpid: " + errno_string(errno));
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

Result<Captured> run_capture(SpawnOptions o) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return Unexpected("pipe: " + errno_string(errno));
    Fd rd(p[0]), wr(p[1]);
    o.stdout_fd = o.stderr_fd = wr.get();
    auto pid = spawn(o);
    wr.reset();
    if (!pid) return Unexpected(pid.error());
    Captured c;
    char buf[4096];
    for (;;) {
        auto n = read_some(rd.get(), buf, sizeof buf);
        if (!n || *n == 0) break;
        if (c.output.size() < (1u << 20)) c.output.append(buf, *n);
    }
    auto status = wait_exit(*pid);
    if (!status) return Unexpected(status.error());
    c.status = *status;
    return c;
}

std::filesystem::path init_program() {
    namespace fs = std::filesystem;
    if (const char* v = std::getenv("FACTORY_INIT"); v && *v) {
        if (::access(v, X_OK) != 0)
            throw Error(std::string("FACTORY_INIT=") + v + ": not executable");
        return v;
    }
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
        for (const auto& p :
             {self.parent_path() / "factory-init",
              self.parent_path().parent_path() / "lib" / "factory" / "factory-init"})
            if (::access(p.c_str(), X_OK) == 0) return p;
    throw Error("factory-init not found next to " + (ec ? std::string("factory") : self.string()) +
                " or in ../lib/factory (it is built and installed with factory; or set "
                "FACTORY_INIT)");
}

std::uint64_t process_start_time(pid_t pid) {
    auto text = read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (!text) return 0;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields restart after
    // the last ')'.
    auto close = text->rfind(')');
    if (close == std::string::npos || close + 2 >= text->size()) return 0;
    char state = (*text)[close + 2];
    if (state == 'Z' || state == 'X') return 0;
    std::size_t pos = close + 1;
    for (int field = 3; field < 22; ++field) {
        pos = text->find(' ', pos + 1);
        if (pos == std::string::npos) return 0;
    }
    return std::strtoull(text->c_str() + pos + 1, nullptr, 10);
}

bool pump_lines(int fd, const std::atomic<bool>* cancel, const std::function<void()>& kill,
                const std::function<void(std::string_view)>& on_line) {
    constexpr std::size_t max_line = 64 << 10;
    bool killed = false;
    std::string pending;
    char buf[16384];
    for (;;) {
        if (cancel && !killed && cancel->load()) {
            killed = true;
            kill();
        }
        pollfd p{fd, POLLIN, 0};
        int ready = ::poll(&p, 1, cancel ? 100 : -1);
        if (ready < 0 && errno != EINTR) break;
        if (ready <= 0) continue;
        auto n = read_some(fd, buf, sizeof buf);
        if (!n || *n == 0) break;
        pending.append(buf, *n);
        std::size_t start = 0;
        for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
            for (std::size_t at = start; at == start || at < nl; at += max_line)
                on_line(std::string_view(pending).substr(at, std::min(max_line, nl - at)));
        pending.erase(0, start);
        while (pending.size() >= max_line) {
            on_line(std::string_view(pending).substr(0, max_line));
            pending.erase(0, max_line);
        }
    }
    if (!pending.empty()) on_line(pending);
    return killed;
}

} // namespace factory::runtime
