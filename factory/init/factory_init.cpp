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

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int main() {
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
        int sig = sigwaitinfo(&wanted, nullptr);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) return 0;
        if (sig == SIGCHLD)
            while (waitpid(-1, nullptr, WNOHANG) > 0) {
            }
    }
}
