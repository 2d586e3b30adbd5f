#pragma once
// Rootless factory: a non-root caller's commands run inside a user + mount namespace in which
// factory is root (docs/runtime.md "Rootless").
//
// The namespace maps the caller's own uid (gid) to itself and every other id of 0..N-1 to the
// caller's subordinate range from /etc/subuid (/etc/subgid), N being the size of that range
// (at least 65536). So factory is root inside (mounts overlayfs, chowns layer files, starts
// runc), and a shell that runs as the caller's uid creates files the caller owns on the host.
// newuidmap/newgidmap (setuid, package uidmap) write the maps: an unprivileged process may
// only map its own id.
//
// The re-entry: the process forks a child that unshares CLONE_NEWUSER|CLONE_NEWNS and waits;
// the parent writes the child's maps with newuidmap/newgidmap and lets it go; the child becomes
// uid/gid 0 and executes factory again with FACTORY_ROOTLESS=UID:GID (the caller) in its
// environment, which marks the re-entry. The parent waits, passing SIGTERM/SIGHUP/SIGUSR1/
// SIGUSR2 on; SIGINT/SIGQUIT from a terminal reach the child directly (same process group).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"

namespace factory::runtime {

// True if this process is in a user namespace other than the initial one (its
// /proc/self/uid_map is not the identity "0 0 4294967295").
bool in_user_namespace();

// The caller of a rootless factory: set only in the re-entered process (FACTORY_ROOTLESS, and
// only when in a user namespace: the variable alone gives nothing).
struct RootlessCaller {
    std::uint32_t uid = 0, gid = 0;
};
std::optional<RootlessCaller> rootless_caller();

// Rootless: what factory writes for the caller outside the store (build -o, export,
// --digest-file) becomes the caller's on the host instead of the namespace root's: `path` and,
// for a directory, everything below it (symlinks themselves, never followed) that the
// namespace's root owns are chowned to the caller. A no-op when not rootless. Errors name the
// path.
Result<void> give_to_caller(const std::string& path);

// A range of subordinate ids (/etc/subuid, /etc/subgid: "NAME_OR_ID:START:COUNT").
struct IdRange {
    std::uint32_t start = 0, count = 0;
};

// The largest range given to `user` (by name or by numeric id) in the text of /etc/subuid or
// /etc/subgid; nullopt if none. Malformed lines are ignored (newuidmap ignores them too).
std::optional<IdRange> find_subid_range(std::string_view text, std::string_view user,
                                        std::uint32_t id);

// One line of a uid_map/gid_map: ids [inside, inside+count) are host ids [outside, …).
struct IdMapping {
    std::uint32_t inside = 0, outside = 0, count = 0;
};

// The ids needed below: 0..65535 (nobody 65534 included) inside.
constexpr std::uint32_t rootless_min_ids = 65536;

// The mapping for the caller's `id` with the subordinate range `sub`: id → id, and the other
// ids 0..sub.count-1 (or 0..sub.count when id is below that) → the range, in order.
std::vector<IdMapping> rootless_id_map(std::uint32_t id, IdRange sub);

// Where the OCI runtime keeps its state for a rootless caller, chosen before the re-entry:
// $XDG_RUNTIME_DIR/factory when that directory is the caller's, else STORE/run.
std::string rootless_state_dir(const std::string& store_root);

// What the host gives this (non-root) caller for a namespace: the tools and both maps.
struct RootlessMaps {
    std::string newuidmap, newgidmap; // their paths
    std::vector<IdMapping> uids, gids;
};

// Errors, each naming the fix: "rootless: newuidmap not found (apt-get install uidmap)" (or
// newgidmap), "rootless: no subordinate uid range for USER in /etc/subuid (needs 65536; e.g.
// usermod --add-subuids 100000-165535 USER)", the same for gids, and a range that is too small.
Result<RootlessMaps> rootless_maps();

struct RootlessEntry {
    std::vector<std::string> argv;      // factory's own argv, run again inside
    std::string store_root;             // resolved with the caller's environment
    std::vector<std::string> extra_env; // "NAME=value", added for the child
};

// Runs argv again inside a new user + mount namespace with `maps`, as root there, waits for it
// and returns its exit status (128 + N when killed by signal N). Throws Error (exit 1) when the
// kernel refuses the namespace (unprivileged user namespaces disabled) or newuidmap/newgidmap
// refuse the maps (their own message).
int run_rootless(const RootlessEntry& entry, const RootlessMaps& maps);

} // namespace factory::runtime
