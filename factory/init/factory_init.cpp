// factory-init: process 1 of a shell environment's container (docs/shell.md "Environments").
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

#include <cstring>

int main(int argc, char** argv) {
    int hold = -1;
    if (argc == 3 && std::strcmp(argv[1], "--hold") == 0) {
        hold = open(argv[2], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (hold < 0) return 1;
    }
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, nullptr);
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
