#pragma once
// `factory run` and `factory shell`: a container from an image of the store (or a recipe,
// built first), on an ephemeral overlay of the image's layer snapshots (docs/shell.md).
//
// Both assemble the same thing a RUN step does (build/run_step.cpp): the layers' snapshots
// (runtime::SnapshotStore), an overlay with a fresh upper directory under ROOT/tmp, a RunSpec,
// run_container. The upper directory is removed afterwards: changes outside bind mounts are
// discarded. The container's output goes straight to our stdout and stderr.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "factory/builder/builder.hpp"
#include "factory/shell/environment.hpp"

namespace factory::shell {

namespace fs = std::filesystem;

struct RunOptions {
    fs::path store_root;
    std::string target; // REF (NAME[:TAG], sha256:…) or a recipe path (*.toml)
    std::map<std::string, std::string> build_args; // --arg, for a recipe target
    // How a recipe target is built first, as `factory build` would: --cache-from and the
    // registry options (the store, args and runtime come from the fields here).
    builder::BuildOptions build;
    std::string runtime; // --runtime crun|runc|PATH ("" = $FACTORY_RUNTIME, else the default)
    std::vector<std::string> mounts; // SRC:DST[:ro]
    std::vector<std::string> env;    // K=V
    std::string workdir;             // "" = the image's WorkingDir, else /
    std::string user;                // UID[:GID]; "" = the image's User
    std::string network = "host";    // host | none
    bool interactive = false;        // -i: the command reads our stdin (else /dev/null)
    // After a SIGTERM, seconds the command has to exit before it is killed (docker's default).
    int stop_timeout = 10;
    std::vector<std::string> args; // "" = the image's Entrypoint + Cmd
};

// Returns the command's exit code (128 + N when killed by signal N; 128 + SIGTERM when it was
// killed stop_timeout after a SIGTERM). Throws Error: usage (2) for bad arguments, a recipe
// error or a missing image; failure (1) otherwise.
int run_image(const RunOptions& options);

struct ShellOptions {
    fs::path store_root;
    std::string target;                            // a recipe path (*.toml) or a REF
    std::map<std::string, std::string> build_args; // --arg, for a recipe target
    // How a recipe target is built first, as `factory build` would: --cache-from and the
    // registry options (the store, args and runtime come from the fields here).
    builder::BuildOptions build;
    std::string runtime; // --runtime for a new environment (a joined one keeps its own)
    std::string project; // "" = the recipe directory's git top (or its directory), or the cwd
    bool root = false;   // run as root instead of the caller
    std::string home;    // "" (the recipe's [shell] home), "host" or "persistent"
    std::vector<std::string> args; // "" = the image's shell, else /bin/bash, else /bin/sh
};

int run_shell(const ShellOptions& options);

// `factory ps`: the running environments, by name.
std::vector<EnvRecord> list_environments(const fs::path& store_root);

// `factory shell --stop WHAT`: ends every environment whose name, id, image or target (recipe
// path, image name) is WHAT, with all their shells. Throws Error (exit 1) when none matches.
int stop_environments(const fs::path& store_root, const std::string& what);

// Helpers, exposed for tests.

// The host's environment variables a shell receives: TERM, COLORTERM, LANG, LC_*,
// SSH_AUTH_SOCK, DISPLAY, WAYLAND_DISPLAY, http(s)_proxy, no_proxy (both cases), TZ, plus
// `extra` (the recipe's [shell] env_passthrough). Only the ones that are set.
std::vector<std::string> passthrough_env(const std::vector<std::string>& extra, char** environ);

// A hostname from an image name: its last path component without tag or digest, lower-cased,
// characters outside [a-z0-9-] replaced by '-', at most 63; "factory" if nothing is left.
std::string hostname_for(const std::string& image_name);

// "name:tag" → the name without the tag ("localhost:5000/a:b" → "localhost:5000/a").
std::string strip_tag(const std::string& ref);

// Text of a passwd (group) file with an entry for uid (gid) appended when none has it.
// Returns the name the file gives the id in *name_out.
std::string passwd_with(std::string text, std::uint32_t uid, std::uint32_t gid,
                        const std::string& name, const std::string& home, std::string* name_out);
std::string group_with(std::string text, std::uint32_t gid, const std::string& name);

} // namespace factory::shell
