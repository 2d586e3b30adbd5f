#pragma once
// What to run in a container: the input of run_container() (runtime.hpp) and of the bundle
// writer (bundle.hpp). Paths inside the container are absolute ("/etc/hosts").

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace factory::runtime {

namespace fs = std::filesystem;

struct Mount {
    std::string destination; // absolute, inside the container; no ".." component
    std::string source;      // host path (bind) or the file system's source ("tmpfs")
    std::string type = "bind";
    // runtime-spec mount options; for binds at least "rbind" and "ro" or "rw".
    std::vector<std::string> options = {"rbind", "rw"};
};

struct RunSpec {
    fs::path rootfs;               // the container's root (an OverlayMount's target)
    std::vector<std::string> args; // argv; args[0] resolved by the runtime in the container
    std::vector<std::string> env;  // "NAME=value"; PATH is added when missing
    std::string cwd = "/";         // absolute; created by the runtime if missing
    std::uint32_t uid = 0, gid = 0;
    std::vector<std::uint32_t> extra_gids;
    bool network = true;   // true: the host's network namespace; false: a new one with lo only
    bool terminal = false; // allocate a pty (interactive shells); the output callback is unused
    // Without a terminal and an output callback: the process reads our stdin (else /dev/null).
    bool pass_stdin = false;
    std::string hostname = "factory";
    // Keep setuid binaries and file capabilities working (sudo in a dev shell). RUN steps
    // keep the default: no_new_privileges.
    bool no_new_privileges = true;
    // false: no cgroup of its own when the runtime can do without (crun
    // --cgroup-manager=disabled): `factory run` and shells, which set no limits, start 5-30 ms
    // sooner. Its processes stay in factory's cgroup; the PID namespace still ends them all.
    bool own_cgroup = true;
    std::vector<Mount> mounts; // after the standard ones (/proc, /dev, /sys …)
    // Generated files bind-mounted read-only at a path (passwd entries for a shell, secrets):
    // destination → content. Written in the bundle directory, removed with it.
    std::vector<std::pair<std::string, std::string>> files;
};

} // namespace factory::runtime
