#pragma once
// An OCI runtime bundle (runtime-spec bundle.md, config.md, config-linux.md): config.json plus
// the files it bind-mounts. The root file system is not in the bundle directory: root.path
// points at the rootfs (an overlay mount) wherever it is.
//
// The configuration follows runc's `runc spec` / Docker's defaults (research/oci-specs-
// security.md §5): namespaces pid, ipc, uts, mount (+ network unless the host's is shared),
// the standard mounts (/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys read-only,
// /sys/fs/cgroup read-only), Docker's default capability set (only in the bounding set for a
// non-root user), Docker's masked and read-only /proc and /sys paths, noNewPrivileges, and
// RLIMIT_NOFILE at this process's hard limit (a container can't raise it without
// CAP_SYS_RESOURCE: MACHINE-NOTES.md "podman's default ulimits fail").

#include <filesystem>
#include <string>
#include <vector>

#include "factory/runtime/run_spec.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

namespace fs = std::filesystem;

// Docker's default capabilities (moby oci/caps/defaults.go).
const std::vector<std::string>& default_capabilities();

// Checks a spec: args present, cwd and every destination absolute without "..", rootfs set.
Result<void> check_spec(const RunSpec& spec);

// The mount points a run needs in its root file system, relative ("etc/hosts"), each with
// whether it is a directory: the standard mounts, /etc/resolv.conf and /etc/hosts (when the
// network is on), spec.mounts, spec.files.
struct MountTarget {
    std::string path;
    bool directory;
};
std::vector<MountTarget> mount_targets(const RunSpec& spec);

struct BundleOptions {
    // The runtime runs in a user namespace (rootless factory: docs/runtime.md "Rootless"). What
    // only the initial namespace's root may mount is left out or bind-mounted instead, as
    // `runc spec --rootless` does: /sys is the host's, bind-mounted read-only, when the
    // container shares the host's network namespace (sysfs is tied to the network namespace's
    // owner); there is no /sys/fs/cgroup mount (cgroup v1 can't be mounted in a user
    // namespace; with /sys bound, the host's hierarchy shows through, read-only).
    bool user_namespace = false;
};

// The text of config.json for `spec`, with generated files (resolv.conf, hosts, spec.files)
// living in bundle_dir. Deterministic: the same spec gives the same bytes.
std::string make_config(const RunSpec& spec, const fs::path& bundle_dir,
                        const BundleOptions& options = {});

// The text of config.json's "process" object alone: what `runtime exec --process FILE` takes to
// start one more process in a running container (the rootfs, mounts and files are ignored).
std::string make_process(const RunSpec& spec);

// Writes config.json and the generated files into bundle_dir (an existing, empty directory).
// Throws nothing; errors name the file.
Result<void> write_bundle(const RunSpec& spec, const fs::path& bundle_dir,
                          const BundleOptions& options = {});

} // namespace factory::runtime
