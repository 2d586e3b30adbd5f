#pragma once
// Running a container with an OCI runtime (crun or runc) from a bundle (DESIGN.md "Running
// steps and shells"; docs/runtime.md "Runtimes").
//
// Which runtime: `--runtime crun|runc|PATH`, else $FACTORY_RUNTIME, else crun when it can work
// here, else runc (in a user namespace: runc first, then crun). crun 1.8 refuses cgroup v1 "hybrid"
// hosts (cgroup2 mounted at /sys/fs/cgroup/unified with controllers): there it is started in a
// private mount namespace from which /sys/fs/cgroup/unified is detached, and then sees plain cgroup
// v1 (MACHINE-NOTES.md). Every container gets a unique id factory-<pid>-<random>, its state lives
// under factory's own --root (not the system's /run/runc), and it is deleted after the run,
// whatever happened; containers left by a killed factory are deleted by the next run.

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "factory/runtime/run_spec.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

namespace fs = std::filesystem;

enum class RuntimeKind { crun, runc };

struct RuntimeChoice {
    RuntimeKind kind = RuntimeKind::runc;
    fs::path binary;
    std::string version; // "1.8.1"
    // Start it in a private mount namespace without these mounts (crun on a hybrid host).
    std::vector<std::string> hide_mounts;
    fs::path state_root; // --root: $FACTORY_RUNTIME_ROOT or /run/factory, then /<crun|runc>
    std::string why;     // "--runtime crun", "FACTORY_RUNTIME=runc", "default"
    // Running in a user namespace (rootless factory): the bundle leaves out what only the
    // host's root may mount (bundle.hpp BundleOptions).
    bool user_namespace = false;

    std::string name() const { return kind == RuntimeKind::crun ? "crun" : "runc"; }
    // For progress output: "crun 1.8.1 (/usr/bin/crun, default; cgroup v1 hybrid host: started
    // without /sys/fs/cgroup/unified)".
    std::string description() const;
};

// requested: "crun", "runc", or a path to one of them; "" looks at $FACTORY_RUNTIME, then picks
// the default. Errors: the requested runtime is missing or can't run here (with the reason), or
// neither runtime is installed ("install crun or runc").
Result<RuntimeChoice> choose_runtime(std::string_view requested = "");

// True if /sys/fs/cgroup is cgroup v1 with a cgroup2 hierarchy holding controllers at
// /sys/fs/cgroup/unified (what crun 1.8 refuses).
bool cgroup_hybrid_with_controllers();

// Called with each line the container writes to stdout or stderr (interleaved, without the
// newline; a line longer than 64 KiB is passed in pieces).
using OutputCallback = std::function<void(std::string_view line)>;

struct RunControl {
    // Polled every 100 ms: when it becomes true the container is killed (SIGKILL) and
    // run_container returns 137 after cleaning up.
    const std::atomic<bool>* cancel = nullptr;
    // Where bundle directories are made ("" = the state root's parent, /run/factory/bundles).
    fs::path bundle_parent;
};

// Runs spec with the runtime and returns the container process's exit code (128 + N when it
// was killed by signal N). The rootfs must be ready (mounted). Output: with on_output set and
// spec.terminal false, stdout+stderr lines go to on_output; otherwise the container shares our
// stdin/stdout/stderr. Errors: an invalid spec, a bundle that can't be written, a runtime that
// can't start or that fails before the process runs (its own log message, e.g. "exec: "foo":
// executable file not found in $PATH"). The container is deleted before returning, in every
// case.
Result<int> run_container(const RunSpec& spec, const RuntimeChoice& runtime,
                          const OutputCallback& on_output, const RunControl& control = {});

// ---- long-lived containers (shell environments: docs/shell.md "Environments") ----------------

// Starts spec's process as container `id` in the background (`run --detach`) with stdio on
// /dev/null, its bundle written to bundle_dir (an existing, empty directory that must stay until
// the container is deleted). Returns the pid of the container's process 1. The id must not look
// like run_container's (factory-<pid>-…): those are swept when their factory is gone.
Result<pid_t> start_detached(const RunSpec& spec, const RuntimeChoice& runtime,
                             const std::string& id, const fs::path& bundle_dir);

// Runs one more process in the running container `id` (`exec --process FILE`; FILE is
// process_file, written here and removed afterwards) with our stdin/stdout/stderr, through a
// pty when process.terminal. Returns its exit code (128 + N when killed by signal N); the
// runtime's own failure (no such executable, container not running) as an error.
// With control.cancel set, the process (not the container) is killed (SIGKILL) once it turns
// true, and 137 returned.
Result<int> exec_in(const RuntimeChoice& runtime, const std::string& id, const RunSpec& process,
                    const fs::path& process_file, const RunControl& control = {});

// Kills (SIGKILL) and deletes container id; nothing happens when it is already gone.
void remove_container(const RuntimeChoice& runtime, const std::string& id);

// Deletes containers (and bundle directories) that factory processes which no longer exist
// left under runtime.state_root. Returns how many containers were deleted. Called by
// run_container; exposed for `factory cache prune`-like commands and tests.
int sweep_stale_containers(const RuntimeChoice& runtime, const fs::path& bundle_parent = {});

} // namespace factory::runtime
