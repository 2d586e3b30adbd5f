#pragma once
// Shell environments (docs/shell.md "Environments"): one long-lived container per (image,
// project, user, HOME, volumes) that every `factory shell` of it enters, so that two shells see
// each other's processes and files. The first shell starts it, each shell is a runtime `exec`
// into it, the last one out ends it (the root file system is ephemeral); `factory ps` lists
// them and `factory shell --stop` ends one.
//
// On disk, under the store:
//   ROOT/envs/<id>.lock           flock: held (exclusive) to start, join, leave or end <id>
//   ROOT/envs/<id>/env.json       the record below, written once the container runs
//   ROOT/envs/<id>/fs/            the overlay (upper, work, stubs, merged): runtime::Rootfs
//   ROOT/envs/<id>/bundle/        config.json and the generated files it bind-mounts
//   ROOT/envs/<id>/sessions/<pid> one per shell inside, flock-held by that factory process
//
// A shell counts as gone when nobody holds its session file's lock: a SIGKILLed `factory shell`
// never keeps an environment alive. An environment with no shell left is ended by whoever
// looks next (a shell leaving or entering, `factory ps`, `--stop`).

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cache/lock.hpp"
#include "factory/runtime/runtime.hpp"

namespace factory::shell {

namespace fs = std::filesystem;

struct EnvRecord {
    std::string id;        // 16 hex of sha256(identity)
    std::string name;      // "<hostname>-<first 8 hex of id>", what `ps` shows
    std::string image;     // as the user named it ("hello:latest")
    std::string digest;    // manifest digest
    std::string target;    // the recipe's absolute path, or the image name (for --stop)
    std::string project;   // the bind-mounted project directory
    std::uint32_t uid = 0; // the shells' user
    std::string container; // the runtime's container id: factory-env-<id>
    std::string runtime;   // "crun" | "runc"
    std::string runtime_binary;
    std::string runtime_version;
    std::string state_root;
    std::vector<std::string> hide_mounts;
    std::vector<std::string> lowers; // the snapshots (diff_id hex) its overlay stacks
    pid_t init_pid = 0;              // the container's process 1, as the host sees it
    std::uint64_t init_start = 0;    // its start time (/proc/PID/stat field 22): pid reuse guard
    std::int64_t created = 0;        // unix seconds
    int shells = 0;                  // live shells (filled by list())

    runtime::RuntimeChoice runtime_choice() const;
};

// The record as JSON text (env.json) and back; nullopt for anything malformed.
std::string to_json(const EnvRecord& record);
std::optional<EnvRecord> record_from_json(const std::string& text);

class Environments {
  public:
    explicit Environments(fs::path store_root);

    fs::path dir(const std::string& id) const { return root_ / id; }
    fs::path rootfs_dir(const std::string& id) const { return dir(id) / "fs"; }
    fs::path merged(const std::string& id) const { return dir(id) / "fs" / "merged"; }
    fs::path bundle(const std::string& id) const { return dir(id) / "bundle"; }

    // Exclusive lock of <id>; every change of an environment happens under it.
    cache::FileLock lock(const std::string& id) const;

    std::optional<EnvRecord> read(const std::string& id) const;
    void write(const EnvRecord& record) const;
    // Its container's process 1 is still the one that was started.
    static bool running(const EnvRecord& record);

    // Registers this process as a shell of <id> (call under lock()): the returned lock is the
    // shell's presence; dropping it is leaving.
    cache::FileLock add_session(const std::string& id) const;
    // Live shells of <id> (call under lock()); stale session files are removed.
    int live_sessions(const std::string& id) const;

    // Ends <id> (call under lock()): kills and deletes the container, unmounts the overlay,
    // removes the directory. Works from whatever is left (no record, no container).
    void end(const std::string& id, const std::optional<EnvRecord>& record) const;

    // Every environment, with its live shells counted; environments with no live shell (their
    // shells were killed) are ended on the way, unless another process holds their lock.
    std::vector<EnvRecord> list() const;

  private:
    fs::path root_;
};

} // namespace factory::shell
