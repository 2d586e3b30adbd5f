#include "factory/builder/run_step.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "cache/lock.hpp"
#include "factory/builder/output_tail.hpp"
#include "factory/runtime/changeset.hpp"
#include "factory/runtime/in_root.hpp"
#include "factory/runtime/rootfs.hpp"
#include "factory/runtime/snapshot_store.hpp"
#include "factory/sources/trust.hpp"
#include "factory/util/interrupt.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/strings.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t max_account_file = 1 << 20;

// Reads etc/NAME of the container's root without following a symlink out of it.
std::string read_account_file(const fs::path& root, const char* name) {
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) return {};
    auto etc = runtime::open_dir_in_root(root_fd.get(), "etc", runtime::Resolver::automatic, false);
    if (!etc) return {};
    Fd fd(::openat(etc->get(), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_size) > max_account_file)
        return {};
    std::string out(static_cast<std::size_t>(st.st_size), '\0');
    auto n = read_some(fd.get(), out.data(), out.size());
    out.resize(n ? *n : 0);
    return out;
}

// The numeric id of `name` in a passwd/group file's text (field 3), or nullopt.
std::optional<std::uint32_t> lookup_id(const std::string& text, const std::string& name,
                                       std::uint32_t* gid_out = nullptr) {
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        start = end + 1;
        std::vector<std::string> f;
        for (std::size_t p = 0;;) {
            auto c = line.find(':', p);
            f.push_back(line.substr(p, c == std::string::npos ? std::string::npos : c - p));
            if (c == std::string::npos) break;
            p = c + 1;
        }
        if (f.size() < 3 || f[0] != name) continue;
        try {
            if (gid_out && f.size() > 3) *gid_out = static_cast<std::uint32_t>(std::stoul(f[3]));
            return static_cast<std::uint32_t>(std::stoul(f[2]));
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

// "uid[:gid]" or "name[:group]" → numeric ids, names resolved in the container's /etc
// (image-spec config.md "User"). An unknown name is an error.
std::pair<std::uint32_t, std::uint32_t> resolve_user(const fs::path& root, const std::string& user,
                                                     const std::string& id) {
    if (user.empty()) return {0, 0};
    auto colon = user.find(':');
    std::string u = user.substr(0, colon);
    std::string g = colon == std::string::npos ? "" : user.substr(colon + 1);
    std::uint32_t uid = 0, gid = 0;
    if (all_digits(u)) {
        uid = static_cast<std::uint32_t>(std::stoul(u));
        if (auto pw_gid = std::uint32_t{0}; g.empty()) {
            auto passwd = read_account_file(root, "passwd");
            // A numeric uid with no group takes the passwd entry's group when there is one.
            std::size_t start = 0;
            while (start < passwd.size()) {
                auto end = passwd.find('\n', start);
                if (end == std::string::npos) end = passwd.size();
                auto line = passwd.substr(start, end - start);
                start = end + 1;
                auto c1 = line.find(':'), c2 = line.find(':', c1 + 1), c3 = line.find(':', c2 + 1),
                     c4 = line.find(':', c3 + 1);
                if (c3 == std::string::npos || c4 == std::string::npos) continue;
                if (line.substr(c2 + 1, c3 - c2 - 1) == u) {
                    auto gs = line.substr(c3 + 1, c4 - c3 - 1);
                    if (all_digits(gs)) pw_gid = static_cast<std::uint32_t>(std::stoul(gs));
                    break;
                }
            }
            gid = pw_gid;
        }
    } else {
        std::uint32_t pw_gid = 0;
        auto found = lookup_id(read_account_file(root, "passwd"), u, &pw_gid);
        if (!found)
            throw Error(id + ": user '" + u + "' is not in the image's /etc/passwd",
                        ExitCode::usage);
        uid = *found;
        gid = pw_gid;
    }
    if (!g.empty()) {
        if (all_digits(g)) {
            gid = static_cast<std::uint32_t>(std::stoul(g));
        } else {
            auto found = lookup_id(read_account_file(root, "group"), g);
            if (!found)
                throw Error(id + ": group '" + g + "' is not in the image's /etc/group",
                            ExitCode::usage);
            gid = *found;
        }
    }
    return {uid, gid};
}

// Creates the missing directories of the working directory `cwd` in the root, owned by the
// step's uid:gid with mode 0755, as Docker's WORKDIR does: the runtime would make them 0:0, where
// a step with a non-root `user` can't write. Every component is resolved inside the root.
void make_workdir(const fs::path& root, const std::string& cwd, std::uint32_t uid,
                  std::uint32_t gid, const std::string& id) {
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) throw Error(id + ": cannot open " + root.string() + ": " + errno_string(errno));
    auto fail = [&](const std::string& why) {
        return Error(id + ": cannot create the working directory " + cwd + ": " + why);
    };
    std::string parent;
    for (auto component : runtime::split_path(cwd)) {
        std::string name(component);
        std::string rel = parent.empty() ? name : parent + "/" + name;
        int err = 0;
        if (runtime::open_dir_in_root(root_fd.get(), rel, runtime::Resolver::automatic, false,
                                      &err)) {
            parent = rel;
            continue;
        }
        if (err != ENOENT) break; // not a directory …: the runtime says so
        auto dir =
            runtime::open_dir_in_root(root_fd.get(), parent, runtime::Resolver::automatic, false);
        if (!dir) throw fail(dir.error());
        if (::mkdirat(dir->get(), name.c_str(), 0755) != 0) {
            if (errno != EEXIST) throw fail(rel + ": " + errno_string(errno));
            break; // a dangling symlink: the runtime resolves it as before
        }
        // 0755 whatever factory's umask: the layer must not depend on it.
        if (::fchmodat(dir->get(), name.c_str(), 0755, 0) != 0 ||
            ::fchownat(dir->get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
            throw fail(rel + ": " + errno_string(errno));
        parent = rel;
    }
}

// Holds the cache mounts' locks for the duration of a run (sharing = locked).
struct CacheMounts {
    std::vector<cache::FileLock> locks;
};

std::string join_args(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv)
        out += (out.empty() ? "" : " ") + a;
    return out;
}

// The host's CA bundle, read-only for this run only (sources/trust.hpp), unless the step says
// trust = "image" or sets the variable itself. Never in the key: the image is the same on
// every network.
void add_host_trust(const recipe::RunStep& step, runtime::RunSpec& spec) {
    if (step.trust != recipe::RunStep::Trust::host) return;
    auto bundle = sources::host_ca_bundle();
    if (bundle.empty()) return;
    spec.mounts.push_back({sources::step_ca_bundle_path,
                           bundle.string(),
                           "bind",
                           {"rbind", "ro", "nosuid", "nodev"}});
    for (auto& var : sources::ca_bundle_env(sources::step_ca_bundle_path)) {
        auto name = var.substr(0, var.find('=') + 1);
        bool set = false;
        for (const auto& e : spec.env)
            set = set || e.starts_with(name);
        if (!set) spec.env.push_back(std::move(var));
    }
}

} // namespace

fs::path cache_mount_dir(const fs::path& store_root, const std::string& id) {
    return store_root / "mounts" / Sha256::hex(id).substr(0, 32);
}

std::vector<std::string> run_environment(const RunContext& ctx, const recipe::RunStep& step) {
    std::vector<std::string> env = ctx.env;
    auto set = [&](const std::string& name, const std::string& value) {
        for (auto& e : env)
            if (e.compare(0, name.size() + 1, name + "=") == 0) {
                e = name + "=" + value;
                return;
            }
        env.push_back(name + "=" + value);
    };
    for (const auto& [k, v] : step.env)
        set(k, v);
    set("SOURCE_DATE_EPOCH", std::to_string(ctx.epoch));
    return env;
}

RunOutcome execute_run(const RunContext& ctx, const recipe::RunStep& step, const std::string& id) {
    RunOutcome out;
    out.scratch = std::make_unique<TempDir>(ctx.store_root / "tmp", "run-");
    const fs::path& scratch = out.scratch->path();

    // The stage's layers as snapshots, top first for overlayfs.
    runtime::SnapshotStore snapshots(ctx.store_root, *ctx.blobs);
    std::vector<fs::path> lowers;
    for (std::size_t i = ctx.layers.size(); i-- > 0;) {
        auto path = snapshots.ensure(ctx.diff_ids.at(i), ctx.layers[i]);
        if (!path) throw Error(id + ": layer " + ctx.layers[i].digest + ": " + path.error());
        lowers.push_back(*path);
    }

    runtime::RunSpec spec;
    spec.args = step.argv();
    spec.env = run_environment(ctx, step);
    spec.cwd = step.workdir.empty() ? (ctx.workdir.empty() ? "/" : ctx.workdir) : step.workdir;
    spec.network = step.network;
    spec.hostname = "factory";
    add_host_trust(step, spec);

    CacheMounts mounts;
    for (const auto& c : step.cache) {
        auto dir = cache_mount_dir(ctx.store_root, c.id.empty() ? c.target : c.id);
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec)
            throw Error(id + ": cannot create cache mount " + dir.string() + ": " + ec.message());
        // One run at a time per cache mount: apt and npm caches don't take concurrent writers.
        mounts.locks.push_back(cache::FileLock::exclusive(dir.string() + ".lock"));
        spec.mounts.push_back({c.target, dir.string(), "bind", {"rbind", "rw"}});
    }
    for (const auto& s : step.secrets) {
        auto it = ctx.secrets ? ctx.secrets->find(s.id) : decltype(ctx.secrets->end()){};
        if (!ctx.secrets || it == ctx.secrets->end())
            throw Error(s.where.str() + ": the step uses secret '" + s.id +
                            "', but no --secret id=" + s.id + ",src=FILE (or env=VAR) was given",
                        ExitCode::usage);
        if (!s.target.empty())
            spec.files.emplace_back(s.target, it->second);
        else
            spec.env.push_back(s.env + "=" + it->second);
    }

    auto rootfs = runtime::Rootfs::create(scratch / "fs", lowers, runtime::mount_targets(spec));
    if (!rootfs) throw Error(id + ": cannot assemble the root file system: " + rootfs.error());
    spec.rootfs = rootfs->merged();
    auto [uid, gid] = resolve_user(spec.rootfs, step.user.empty() ? ctx.user : step.user, id);
    spec.uid = uid;
    spec.gid = gid;
    make_workdir(spec.rootfs, spec.cwd, uid, gid, id);

    OutputTail tail;
    auto on_line = [&](std::string_view line) {
        tail.add(line);
        if (ctx.on_output) ctx.on_output(line);
    };
    // Interrupted: the container is killed and deleted, its root file system unmounted.
    runtime::RunControl control;
    control.cancel = &interrupted();
    auto code = runtime::run_container(spec, *ctx.runtime, on_line, control);
    if (auto r = rootfs->unmount(); !r) throw Error(id + ": " + r.error());
    throw_if_interrupted();
    if (!code) throw Error(id + ": " + code.error());
    if (*code != 0) {
        // The output's tail first, then the one-line error last (docs/cli.md "Errors").
        std::string context;
        if (!tail.empty()) {
            context = id + (tail.kept_errors() ? ": its first error lines and last lines:"
                                               : ": last lines of its output:");
            for (const auto& l : tail.lines())
                context += "\n  " + l;
        }
        throw Error(id + ": the command exited with " + std::to_string(*code) + ": " +
                    join_args(spec.args))
            .with_context(std::move(context));
    }
    runtime::NormalizeOptions norm;
    norm.drop_noise = true;
    norm.mount_stubs = rootfs->stub_paths();
    norm.epoch = ctx.epoch;
    auto entries = runtime::diff_upper(rootfs->upper(), norm);
    if (!entries) throw Error(id + ": reading the step's changes: " + entries.error());
    out.entries = std::move(*entries);
    return out;
}

} // namespace factory::builder
