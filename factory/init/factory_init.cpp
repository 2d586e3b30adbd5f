// factory-init: process 1 of the containers of `factory shell` and `factory run`
// (docs/shell.md).
//
// An environment is one long-lived container that every `factory shell` of it enters with the
// runtime's `exec`. Its first process must stay alive without a shell, a sleep binary or
// anything else from the image (a scratch image has none), reap the orphans that the shells'
// processes leave (it is their parent once theirs exit), and end when told. This program does
// that and nothing else. It is linked statically and bind-mounted read-only at /.factory-init,
// so it runs in any image.
//
// Signals: SIGTERM, SIGINT and SIGHUP end it (exit 0; the kernel then kills the rest of the
// PID namespace). Everything else is ignored. It reads nothing and writes nothing.
//
// `factory-init -- CMD [ARG…]` is process 1 of `factory run`, as docker's `--init` (tini) is:
// the command runs as its child, so it does not get the kernel's protection of a namespace's
// process 1 (which drops every signal it has no handler for: `sleep` would ignore SIGTERM).
// Every signal init receives (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 …, forwarded by the
// runtime from factory) is passed on to the command; orphans are reaped; init exits with the
// command's exit code, 128 + N when signal N killed it. A command that can't be executed exits
// 127 (not found) or 126, with one `factory: error:` line, as shells do.
//
// `factory-init --hold LOCKFILE` is the other use: the holder of a rootless store's user and
// mount namespaces (runtime/rootless.hpp). Every rootless factory of the store holds LOCKFILE
// shared while it runs; once a second passes in which nobody does, the holder exits and the
// namespaces go with their last process.

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace {

// Child side of `--`: default signal state, then the command (PATH searched, as a shell does).
[[noreturn]] void exec_command(char** argv) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(argv[0], argv);
    int err = errno;
    std::fprintf(stderr, "factory: error: cannot run %s: %s\n", argv[0], std::strerror(err));
    _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

int run_command(char** argv) {
    sigset_t all;
    sigfillset(&all);
    pid_t child = fork();
    if (child < 0) {
        std::fprintf(stderr, "factory: error: fork: %s\n", std::strerror(errno));
        return 1;
    }
    if (child == 0) exec_command(argv);
    for (;;) {
        siginfo_t info{};
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status = 0;
        for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) {
            if (pid != child) continue;
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    int hold = -1;
    if (argc == 3 && std::strcmp(argv[1], "--hold") == 0) {
        hold = open(argv[2], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (hold < 0) return 1;
    }
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, nullptr);
    if (argc >= 3 && std::strcmp(argv[1], "--") == 0) return run_command(argv + 2);
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGHUP);
    for (;;) {
        timespec second{1, 0};
        int sig =
            hold >= 0 ? sigtimedwait(&wanted, nullptr, &second) : sigwaitinfo(&wanted, nullptr);
        if (sig < 0 && hold >= 0 && flock(hold, LOCK_EX | LOCK_NB) == 0) return 0;
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) return 0;
        if (sig == SIGCHLD)
            while (waitpid(-1, nullptr, WNOHANG) > 0) {
            }
    }
}
