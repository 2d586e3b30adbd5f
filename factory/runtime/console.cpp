#include "factory/runtime/console.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "factory/util/files.hpp"

namespace factory::runtime {

namespace {

// SIGWINCH → a byte in this pipe (a handler may only do async-signal-safe things).
int g_winch_pipe = -1;

void on_winch(int) {
    int saved = errno;
    char b = 1;
    if (g_winch_pipe >= 0) (void)!::write(g_winch_pipe, &b, 1);
    errno = saved;
}

// Our terminal in raw mode for as long as this lives (nothing when stdin is not a terminal).
class RawTerminal {
  public:
    RawTerminal() {
        if (::isatty(0) != 1 || ::tcgetattr(0, &saved_) != 0) return;
        termios raw = saved_;
        ::cfmakeraw(&raw);
        if (::tcsetattr(0, TCSANOW, &raw) == 0) active_ = true;
    }
    ~RawTerminal() {
        if (active_) ::tcsetattr(0, TCSANOW, &saved_);
    }
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

  private:
    termios saved_{};
    bool active_ = false;
};

// SIGWINCH handled for as long as this lives; the previous disposition comes back after.
class WinchWatch {
  public:
    WinchWatch() {
        int p[2];
        if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return;
        rd_.reset(p[0]);
        wr_.reset(p[1]);
        g_winch_pipe = wr_.get();
        struct sigaction sa {};
        sa.sa_handler = on_winch;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGWINCH, &sa, &old_);
    }
    ~WinchWatch() {
        if (!wr_) return;
        ::sigaction(SIGWINCH, &old_, nullptr);
        g_winch_pipe = -1;
    }
    WinchWatch(const WinchWatch&) = delete;
    WinchWatch& operator=(const WinchWatch&) = delete;
    int fd() const noexcept { return rd_.get(); }

  private:
    Fd rd_, wr_;
    struct sigaction old_ {};
};

void copy_window_size(int master) {
    struct winsize ws {};
    if (::ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        ::ioctl(master, TIOCSWINSZ, &ws);
}

// The file descriptor in an SCM_RIGHTS message on a connected socket, or -1.
int receive_fd(int sock) {
    char data[256];
    iovec iov{data, sizeof data};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
            return fd;
        }
    return -1;
}

// The runtime's exit status if it has exited.
std::optional<int> exited(pid_t pid) {
    int status = 0;
    pid_t r;
    do
        r = ::waitpid(pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r != pid) return std::nullopt;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

enum class Pass { ok, closed, write_failed };

// Copies what fd has now to out (unless out is -1: then it is read and dropped).
Pass pass(int fd, int out) {
    char buf[16384];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return Pass::ok;
    if (n <= 0) return Pass::closed; // EIO on a master: every slave is closed
    if (out < 0) return Pass::ok;
    return write_all(out, buf, static_cast<std::size_t>(n)) ? Pass::ok : Pass::write_failed;
}

} // namespace

Result<ConsoleSocket> ConsoleSocket::listen(const fs::path& path) {
    sockaddr_un addr{};
    if (path.string().size() >= sizeof addr.sun_path)
        return Unexpected("console socket path too long (" + std::to_string(path.string().size()) +
                          " bytes): " + path.string());
    ConsoleSocket s;
    s.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.fd_) return Unexpected("socket: " + errno_string(errno));
    ::unlink(path.c_str());
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.string().size());
    if (::bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(s.fd_.get(), 1) != 0)
        return Unexpected("cannot listen on " + path.string() + ": " + errno_string(errno));
    s.path_ = path;
    return s;
}

ConsoleSocket::~ConsoleSocket() {
    if (!path_.empty()) ::unlink(path_.c_str());
}

Result<int> proxy_console(ConsoleSocket& socket, pid_t runtime_pid, const std::atomic<bool>* cancel,
                          const std::function<void()>& on_cancel) {
    bool cancelled = false;
    auto check_cancel = [&] {
        if (!cancelled && cancel && cancel->load()) {
            cancelled = true;
            if (on_cancel) on_cancel();
        }
    };
    // 1. The master, unless the runtime fails (or exits) first.
    Fd master;
    while (!master) {
        if (auto status = exited(runtime_pid)) return *status;
        check_cancel();
        pollfd p{socket.fd(), POLLIN, 0};
        int r = ::poll(&p, 1, 50);
        if (r < 0 && errno != EINTR) return Unexpected("poll: " + errno_string(errno));
        if (r <= 0) continue;
        Fd conn(::accept4(socket.fd(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) continue;
        master.reset(receive_fd(conn.get()));
    }
    copy_window_size(master.get());

    // 2. Both ways until the runtime exits (its process did), then what is left to read. A
    // closed terminal (reads and writes fail) stops neither: the output is dropped, and the
    // process ends on its own or by `cancel`.
    WinchWatch winch;
    RawTerminal raw;
    bool stdin_open = true, stdout_open = true, master_open = true;
    std::optional<int> status;
    for (;;) {
        check_cancel();
        if (!status) status = exited(runtime_pid);
        if (status && !master_open) break;
        pollfd p[3] = {{master_open ? master.get() : -1, POLLIN, 0},
                       {stdin_open && master_open ? 0 : -1, POLLIN, 0},
                       {winch.fd(), POLLIN, 0}};
        int r = ::poll(p, 3, status ? 0 : 50);
        if (r < 0 && errno != EINTR) return Unexpected("poll: " + errno_string(errno));
        if (r <= 0) {
            if (status) break; // exited, and nothing more to read
            continue;
        }
        if (p[2].revents & POLLIN) {
            char drain[64];
            while (::read(winch.fd(), drain, sizeof drain) > 0) {
            }
            if (master_open) copy_window_size(master.get());
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
            if (pass(0, master.get()) != Pass::ok) stdin_open = false;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            auto r2 = pass(master.get(), stdout_open ? 1 : -1);
            if (r2 == Pass::closed) master_open = false;
            if (r2 == Pass::write_failed) stdout_open = false;
        }
    }
    return *status;
}

} // namespace factory::runtime
