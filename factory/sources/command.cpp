#include "factory/sources/command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "factory/util/fd.hpp"

namespace factory::sources {

namespace {

constexpr std::size_t stderr_tail = 64 * 1024;

struct FileActions {
    posix_spawn_file_actions_t fa;
    FileActions() { ::posix_spawn_file_actions_init(&fa); }
    ~FileActions() { ::posix_spawn_file_actions_destroy(&fa); }
};

std::vector<char*> pointers(const std::vector<std::string>& v) {
    std::vector<char*> out;
    for (const auto& s : v)
        out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

Result<int> wait_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return Unexpected("waitpid: " + errno_string(errno));
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

// Reads both pipes until both are closed; stdout to the sink or `captured`.
Result<void> pump(int out_fd, int err_fd, const OutputSink& sink, std::uint64_t max_output,
                  CommandResult& result) {
    std::vector<char> buf(1 << 16);
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        pollfd fds[2] = {{out_open ? out_fd : -1, POLLIN, 0}, {err_open ? err_fd : -1, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return Unexpected("poll: " + errno_string(errno));
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(fds[i].fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                (i == 0 ? out_open : err_open) = false;
                continue;
            }
            std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
            if (i == 1) {
                result.error.append(chunk);
                if (result.error.size() > stderr_tail)
                    result.error.erase(0, result.error.size() - stderr_tail);
            } else if (sink) {
                if (auto r = sink(chunk); !r) return r;
            } else {
                if (result.output.size() + chunk.size() > max_output)
                    return Unexpected("more than " + std::to_string(max_output) +
                                      " bytes of output");
                result.output.append(chunk);
            }
        }
    }
    return {};
}

} // namespace

Result<CommandResult> run_command(const Command& command, const OutputSink& sink,
                                  std::uint64_t max_output) {
    if (command.argv.empty()) return Unexpected("no program to run");
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Unexpected("pipe: " + errno_string(errno));
    Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Unexpected("pipe: " + errno_string(errno));
    Fd err_r(err_pipe[0]), err_w(err_pipe[1]);

    FileActions actions;
    if (command.stdin_fd >= 0)
        ::posix_spawn_file_actions_adddup2(&actions.fa, command.stdin_fd, 0);
    else
        ::posix_spawn_file_actions_addopen(&actions.fa, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions.fa, out_w.get(), 1);
    ::posix_spawn_file_actions_adddup2(&actions.fa, err_w.get(), 2);
    if (!command.cwd.empty())
        ::posix_spawn_file_actions_addchdir_np(&actions.fa, command.cwd.c_str());

    // Default signal dispositions and an empty mask in the child, whatever ours are.
    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    sigset_t all, none;
    ::sigfillset(&all);
    ::sigemptyset(&none);
    ::posix_spawnattr_setsigdefault(&attr, &all);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    auto argv = pointers(command.argv);
    auto envp = pointers(command.env);
    pid_t pid = 0;
    int rc =
        ::posix_spawn(&pid, command.argv[0].c_str(), &actions.fa, &attr, argv.data(), envp.data());
    ::posix_spawnattr_destroy(&attr);
    if (rc != 0) return Unexpected("cannot run " + command.argv[0] + ": " + errno_string(rc));
    out_w.reset();
    err_w.reset();

    CommandResult result;
    auto pumped = pump(out_r.get(), err_r.get(), sink, max_output, result);
    if (!pumped) ::kill(pid, SIGKILL);
    out_r.reset();
    err_r.reset();
    auto status = wait_child(pid);
    if (!pumped) return Unexpected(pumped.error());
    if (!status) return Unexpected(status.error());
    result.status = *status;
    return result;
}

std::string last_line(std::string_view text) {
    while (!text.empty()) {
        auto nl = text.find_last_of('\n');
        std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(0, nl);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
            line.remove_suffix(1);
        while (!line.empty() && line.front() == ' ')
            line.remove_prefix(1);
        if (!line.empty()) return std::string(line);
    }
    return {};
}

} // namespace factory::sources
