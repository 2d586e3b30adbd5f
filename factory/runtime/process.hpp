#pragma once
// Starting the OCI runtime: fork + exec with chosen stdio, a parent-death signal, and optionally
// a private mount namespace with some mounts removed first (crun on a cgroup v1 hybrid host:
// MACHINE-NOTES.md "Runtimes and podman").

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"

namespace factory::runtime {

struct SpawnOptions {
    std::vector<std::string> argv; // argv[0] is the program's path (no PATH search)
    int stdin_fd = -1;             // -1: /dev/null
    int stdout_fd = -2;            // -2: inherit ours; -1: /dev/null
    int stderr_fd = -2;            // likewise
    // SIGKILL the child when the thread that spawned it dies (PR_SET_PDEATHSIG): a killed
    // factory doesn't leave a runtime process behind.
    bool die_with_parent = true;
    // When not empty: the child runs in a new, private mount namespace from which these mount
    // points are detached (needs CAP_SYS_ADMIN). The host's mounts are untouched.
    std::vector<std::string> hide_mounts;
};

// A program by name: $PATH first, then where distributions put system tools (runc is in
// /usr/sbin on Debian, which a user's PATH may lack): /usr/local/sbin, /usr/local/bin,
// /usr/sbin, /usr/bin, /sbin, /bin. Empty if none is an executable regular file.
std::filesystem::path find_program(const std::string& name);

// Starts the child. Errors (fork, namespace set-up, exec) are reported by the child through a
// pipe and returned here: "cannot run /usr/bin/crun: No such file or directory".
Result<pid_t> spawn(const SpawnOptions& options);

// Waits for a child; returns its exit code, or 128 + the signal that killed it (as shells do).
Result<int> wait_exit(pid_t pid);

struct Captured {
    int status = 0;     // as wait_exit
    std::string output; // stdout and stderr, interleaved, at most 1 MiB
};
// Runs to completion with stdout+stderr captured (stdin /dev/null).
Result<Captured> run_capture(SpawnOptions options);

// Reads a child's output from `fd` until every writer has closed it, passing each line on
// (without its "\n"; a line longer than 64 KiB in pieces of that size). When `cancel` turns
// true, calls kill() once and reads on until the pipe closes. Returns whether kill() was called.
bool pump_lines(int fd, const std::atomic<bool>* cancel, const std::function<void()>& kill,
                const std::function<void(std::string_view)>& on_line);

// factory-init (factory/init/factory_init.cpp: process 1 of shell environments and `factory
// run`, holder of the rootless namespaces): $FACTORY_INIT, else beside this binary (a build
// tree), else in ../lib/factory (an installation). Throws Error naming where it looked.
std::filesystem::path init_program();

// Start time of a running process in clock ticks since boot (/proc/PID/stat field 22): with the
// pid, it names one process for good (a pid is reused, the pair is not). 0 when the process is
// gone or a zombie (it holds no namespaces any more).
std::uint64_t process_start_time(pid_t pid);

} // namespace factory::runtime
