#include "factory/runtime/runtime.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "factory/runtime/bundle.hpp"
#include "factory/runtime/console.hpp"
#include "factory/runtime/process.hpp"
#include "factory/runtime/rootless.hpp"
#include "factory/util/files.hpp"

namespace factory::runtime {

namespace {

// $FACTORY_RUNTIME_ROOT (a rootless factory sets it before entering its namespace, where
// /run/factory is not writable: rootless.hpp), else /run/factory for root.
fs::path default_state_parent() {
    if (const char* dir = std::getenv("FACTORY_RUNTIME_ROOT"); dir && dir[0] == '/') return dir;
    if (::geteuid() == 0) return "/run/factory";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
        return fs::path(xdg) / "factory";
    return fs::temp_directory_path() / ("factory-" + std::to_string(::geteuid()));
}

SpawnOptions quiet(std::vector<std::string> argv, const RuntimeChoice& rt = {}) {
    SpawnOptions o;
    o.argv = std::move(argv);
    o.hide_mounts = rt.hide_mounts;
    return o;
}

// "crun version 1.8.1\n…" / "runc version 1.1.5+ds1\n…" → "1.8.1" / "1.1.5+ds1".
std::string parse_version(const std::string& out) {
    auto pos = out.find("version ");
    if (pos == std::string::npos) return "unknown";
    auto start = pos + 8;
    auto end = out.find_first_of(" \n", start);
    return out.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Probes one runtime: it runs (--version) and can work with this host's cgroups.
Result<RuntimeChoice> probe(RuntimeKind kind, const fs::path& binary, const std::string& why) {
    RuntimeChoice c;
    c.kind = kind;
    c.binary = binary;
    c.why = why;
    c.state_root = default_state_parent() / c.name();
    // `--version` costs a fork and an exec on every run (5 ms of a shell's start): its answer
    // is kept next to the state root, keyed by the binary's identity and change time.
    struct stat st {};
    std::string identity;
    if (::stat(binary.c_str(), &st) == 0)
        identity = binary.string() + " " + std::to_string(st.st_dev) + ":" +
                   std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
                   std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec);
    fs::path memo = default_state_parent() / (c.name() + ".version");
    if (auto text = read_file(memo, 4096); text && !identity.empty()) {
        auto nl = text->find('\n');
        if (nl != std::string::npos && text->substr(0, nl) == identity) {
            c.version = text->substr(nl + 1);
            while (!c.version.empty() && c.version.back() == '\n')
                c.version.pop_back();
        }
    }
    if (c.version.empty()) {
        auto out = run_capture(quiet({binary.string(), "--version"}));
        if (!out) return Unexpected(out.error());
        if (out->status != 0)
            return Unexpected(binary.string() + " --version failed: " + out->output);
        c.version = parse_version(out->output);
        std::error_code ec;
        fs::create_directories(memo.parent_path(), ec);
        if (!ec && !identity.empty()) {
            try {
                write_file_atomic(memo, identity + "\n" + c.version + "\n");
            } catch (const std::exception&) { // only a memo
            }
        }
    }
    c.user_namespace = in_user_namespace();
    if (kind == RuntimeKind::crun && cgroup_hybrid_with_controllers()) {
        // The host's mounts are locked in a user namespace: /sys/fs/cgroup/unified can't be
        // unmounted there (EINVAL).
        if (c.user_namespace)
            return Unexpected("crun refuses cgroup v1 hybrid hosts, and hiding "
                              "/sys/fs/cgroup/unified is impossible in a user namespace");
        if (::geteuid() != 0)
            return Unexpected("crun refuses cgroup v1 hybrid hosts, and hiding "
                              "/sys/fs/cgroup/unified needs root");
        c.hide_mounts = {"/sys/fs/cgroup/unified"};
    }
    return c;
}

std::string random_hex() {
    unsigned char b[4] = {};
    if (::getrandom(b, sizeof b, 0) != sizeof b) {
        auto x = static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(::time(nullptr));
        std::memcpy(b, &x, sizeof b);
    }
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (auto c : b) {
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

std::vector<std::string> runtime_argv(const RuntimeChoice& rt,
                                      std::initializer_list<std::string> tail) {
    std::vector<std::string> argv = {rt.binary.string(), "--root=" + rt.state_root.string()};
    argv.insert(argv.end(), tail);
    return argv;
}

// `runtime delete -f ID`, quietly: the container may already be gone.
void delete_container(const RuntimeChoice& rt, const std::string& id) {
    (void)run_capture(quiet(runtime_argv(rt, {"delete", "-f", id}), rt));
}

// The pid in "factory-<pid>-<hex>", or 0.
pid_t owner_pid(const std::string& name) {
    if (!name.starts_with("factory-")) return 0;
    auto rest = name.substr(8);
    auto dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) return 0;
    pid_t pid = 0;
    for (char c : rest.substr(0, dash)) {
        if (c < '0' || c > '9') return 0;
        pid = pid * 10 + (c - '0');
    }
    return pid;
}

bool process_gone(pid_t pid) {
    return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
}

// The runtime's own error messages from its JSON log (runc and crun: {"level","msg",…}).
std::string runtime_errors(const fs::path& log) {
    auto text = read_file(log, 1 << 20);
    if (!text) return {};
    std::string out;
    for (std::string_view rest = *text; !rest.empty();) {
        auto nl = rest.find('\n');
        auto line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? "" : rest.substr(nl + 1);
        if (line.empty()) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        std::string msg, level;
        if (j.is_object()) {
            if (j.contains("msg") && j["msg"].is_string()) msg = j["msg"];
            if (j.contains("level") && j["level"].is_string()) level = j["level"];
        } else {
            msg = std::string(line);
            level = "error";
        }
        if (level != "error" && level != "fatal") continue;
        if (!out.empty()) out += "; ";
        out += msg;
    }
    return out;
}

// Waits for the runtime without output to pump (terminal or inherited stdio), still honouring
// cancellation: once *cancel turns true, kill() is called (once) and the wait goes on.
Result<int> wait_with_cancel(pid_t pid, const std::atomic<bool>* cancel,
                             const std::function<void()>& kill, bool& killed) {
    if (!cancel) return wait_exit(pid);
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 && errno != EINTR) return Unexpected("waitpid: " + errno_string(errno));
        if (!killed && cancel->load()) {
            killed = true;
            kill();
        }
        ::usleep(20000);
    }
}

struct BundleDir {
    fs::path path;
    ~BundleDir() {
        std::error_code ec;
        if (!path.empty()) fs::remove_all(path, ec);
    }
};

} // namespace

bool cgroup_hybrid_with_controllers() {
    struct statfs s {};
    if (::statfs("/sys/fs/cgroup", &s) != 0 || s.f_type == CGROUP2_SUPER_MAGIC) return false;
    if (::statfs("/sys/fs/cgroup/unified", &s) != 0 || s.f_type != CGROUP2_SUPER_MAGIC)
        return false;
    auto controllers = read_file("/sys/fs/cgroup/unified/cgroup.controllers", 4096);
    return controllers && controllers->find_first_not_of(" \n") != std::string::npos;
}

std::string RuntimeChoice::description() const {
    std::string d = name() + " " + version + " (" + binary.string() + ", " + why;
    if (!hide_mounts.empty())
        d += "; cgroup v1 hybrid host: started without /sys/fs/cgroup/unified";
    if (user_namespace) d += "; rootless: in a user namespace";
    return d + ")";
}

Result<RuntimeChoice> choose_runtime(std::string_view requested) {
    std::string req(requested), why = "--runtime " + req;
    if (req.empty()) {
        if (const char* env = std::getenv("FACTORY_RUNTIME"); env && *env) {
            req = env;
            why = "FACTORY_RUNTIME=" + req;
        }
    }
    if (!req.empty()) {
        fs::path binary = req.find('/') != std::string::npos ? fs::path(req) : find_program(req);
        auto base = fs::path(req).filename().string();
        RuntimeKind kind;
        if (base.find("crun") != std::string::npos)
            kind = RuntimeKind::crun;
        else if (base.find("runc") != std::string::npos)
            kind = RuntimeKind::runc;
        else
            return Unexpected("unknown runtime \"" + req +
                              "\": use crun or runc (or a path to one)");
        if (binary.empty()) return Unexpected("runtime " + req + " not found (" + why + ")");
        auto c = probe(kind, binary, why);
        if (!c) return Unexpected("runtime " + req + " can't be used (" + why + "): " + c.error());
        return c;
    }
    std::string reasons;
    // In a user namespace runc first: it needs no cgroup it can't have (its rootless cgroup
    // manager skips them), and bind-mounts device nodes it may not create.
    auto order = in_user_namespace() ? std::vector{std::pair{RuntimeKind::runc, "runc"},
                                                   std::pair{RuntimeKind::crun, "crun"}}
                                     : std::vector{std::pair{RuntimeKind::crun, "crun"},
                                                   std::pair{RuntimeKind::runc, "runc"}};
    for (auto [kind, name] : order) {
        auto binary = find_program(name);
        if (binary.empty()) {
            reasons += std::string(reasons.empty() ? "" : "; ") + name + " not found";
            continue;
        }
        auto c = probe(kind, binary, "default");
        if (c) return c;
        reasons += std::string(reasons.empty() ? "" : "; ") + c.error();
    }
    return Unexpected("no usable OCI runtime: " + reasons + " (install crun or runc)");
}

int sweep_stale_containers(const RuntimeChoice& rt, const fs::path& bundle_parent) {
    int deleted = 0;
    std::error_code ec;
    for (fs::directory_iterator it(rt.state_root, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (!process_gone(owner_pid(name))) continue;
        delete_container(rt, name);
        ++deleted;
    }
    fs::path bundles =
        bundle_parent.empty() ? rt.state_root.parent_path() / "bundles" : bundle_parent;
    for (fs::directory_iterator it(bundles, ec), end; !ec && it != end; it.increment(ec))
        if (process_gone(owner_pid(it->path().filename().string()))) {
            std::error_code rm;
            fs::remove_all(it->path(), rm);
        }
    return deleted;
}

Result<int> run_container(const RunSpec& spec, const RuntimeChoice& rt,
                          const OutputCallback& on_output, const RunControl& control) {
    if (auto r = check_spec(spec); !r) return Unexpected(r.error());
    std::error_code ec;
    fs::path bundles = control.bundle_parent.empty() ? rt.state_root.parent_path() / "bundles"
                                                     : control.bundle_parent;
    fs::create_directories(rt.state_root, ec);
    fs::create_directories(bundles, ec);
    sweep_stale_containers(rt, bundles);

    std::string id = "factory-" + std::to_string(::getpid()) + "-" + random_hex();
    BundleDir bundle{bundles / id};
    if (::mkdir(bundle.path.c_str(), 0700) != 0) {
        int err = errno;
        bundle.path.clear();
        return Unexpected("cannot create bundle directory " + (bundles / id).string() + ": " +
                          errno_string(err));
    }
    BundleOptions bundle_options;
    bundle_options.user_namespace = rt.user_namespace;
    if (auto r = write_bundle(spec, bundle.path, bundle_options); !r) return Unexpected(r.error());
    auto log = bundle.path / "runtime.log";

    bool capture = on_output && !spec.terminal;
    Fd out_rd, out_wr;
    if (capture) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return Unexpected("pipe: " + errno_string(errno));
        out_rd.reset(p[0]);
        out_wr.reset(p[1]);
    }
    SpawnOptions o;
    o.argv = runtime_argv(rt, {"--log=" + log.string(), "--log-format=json"});
    if (!spec.own_cgroup && rt.kind == RuntimeKind::crun)
        o.argv.push_back("--cgroup-manager=disabled");
    for (auto a : {std::string("run"), "--bundle=" + bundle.path.string(), id})
        o.argv.push_back(std::move(a));
    o.stdin_fd = spec.terminal || (spec.pass_stdin && !capture) ? 0 : -1;
    o.stdout_fd = capture ? out_wr.get() : -2;
    o.stderr_fd = capture ? out_wr.get() : -2;
    o.hide_mounts = rt.hide_mounts;
    auto pid = spawn(o);
    out_wr.reset();
    if (!pid) return Unexpected(pid.error());

    bool killed = false;
    Result<int> status = 0;
    if (capture) {
        killed = pump_lines(
            out_rd.get(), control.cancel,
            [&] {
                (void)run_capture(quiet(runtime_argv(rt, {"kill", id, "KILL"}), rt));
            },
            [&](std::string_view line) { on_output(line); });
        status = wait_exit(*pid);
    } else {
        status = wait_with_cancel(
            *pid, control.cancel,
            [&] {
                (void)run_capture(quiet(runtime_argv(rt, {"kill", id, "KILL"}), rt));
            },
            killed);
    }
    // `run` deletes the container when its process exits; after a failure or a kill it may not.
    if (fs::exists(rt.state_root / id, ec)) delete_container(rt, id);
    if (!status) return status;
    if (*status != 0 && !killed) {
        auto errors = runtime_errors(log);
        if (!errors.empty())
            return Unexpected(errors.starts_with(rt.name()) ? errors : rt.name() + ": " + errors);
    }
    return *status;
}

Result<pid_t> start_detached(const RunSpec& spec, const RuntimeChoice& rt, const std::string& id,
                             const fs::path& bundle_dir) {
    if (owner_pid(id) != 0)
        return Unexpected("container id " + id + " would be taken for a leftover run's");
    std::error_code ec;
    fs::create_directories(rt.state_root, ec);
    BundleOptions bundle_options;
    bundle_options.user_namespace = rt.user_namespace;
    if (auto r = write_bundle(spec, bundle_dir, bundle_options); !r) return Unexpected(r.error());
    auto log = bundle_dir / "runtime.log";
    auto pid_file = bundle_dir / "init.pid";
    SpawnOptions o;
    o.argv = runtime_argv(rt, {"--log=" + log.string(), "--log-format=json"});
    // An environment sets no resource limits: without a cgroup of its own crun starts it
    // (and every exec into it) 5-10 ms sooner. runc has no such switch.
    if (!spec.own_cgroup && rt.kind == RuntimeKind::crun)
        o.argv.push_back("--cgroup-manager=disabled");
    for (auto a : {std::string("run"), std::string("--detach"), "--pid-file=" + pid_file.string(),
                   "--bundle=" + bundle_dir.string(), id})
        o.argv.push_back(std::move(a));
    o.stdout_fd = -1;
    o.stderr_fd = -1;
    o.hide_mounts = rt.hide_mounts;
    // The container outlives this process: no parent-death signal for the runtime's children.
    o.die_with_parent = false;
    auto pid = spawn(o);
    if (!pid) return Unexpected(pid.error());
    auto status = wait_exit(*pid);
    if (!status) return Unexpected(status.error());
    if (*status != 0) {
        auto errors = runtime_errors(log);
        delete_container(rt, id);
        return Unexpected(rt.name() + " run --detach failed (exit " + std::to_string(*status) +
                          ")" + (errors.empty() ? "" : ": " + errors));
    }
    auto text = read_file(pid_file, 64);
    long init = text ? std::strtol(text->c_str(), nullptr, 10) : 0;
    if (init <= 0) {
        delete_container(rt, id);
        return Unexpected(rt.name() + " wrote no pid to " + pid_file.string());
    }
    return static_cast<pid_t>(init);
}

Result<int> exec_in(const RuntimeChoice& rt, const std::string& id, const RunSpec& process,
                    const fs::path& process_file, const RunControl& control) {
    struct Remove {
        fs::path p;
        ~Remove() {
            std::error_code ec;
            fs::remove(p, ec);
            fs::remove(p.string() + ".log", ec);
            fs::remove(p.string() + ".pid", ec);
            fs::remove(p.string() + ".sock", ec);
        }
    } cleanup{process_file};
    {
        std::ofstream out(process_file, std::ios::binary | std::ios::trunc);
        out << make_process(process);
        out.close();
        if (!out) return Unexpected("cannot write " + process_file.string());
    }
    fs::path log = process_file.string() + ".log";
    fs::path pid_file = process_file.string() + ".pid";
    // Kills the exec'd process, by the pid the runtime wrote: the runtime then exits.
    auto kill_process = [&pid_file] {
        auto text = read_file(pid_file, 64);
        long target = text ? std::strtol(text->c_str(), nullptr, 10) : 0;
        if (target > 0) ::kill(static_cast<pid_t>(target), SIGKILL);
    };

    // A terminal for crun: factory holds the pty's master (console.hpp), so window-size
    // changes reach it; runc handles its terminal itself, and does that.
    std::optional<ConsoleSocket> console;
    if (process.terminal && rt.kind == RuntimeKind::crun)
        if (auto c = ConsoleSocket::listen(process_file.string() + ".sock"))
            console = std::move(*c);

    SpawnOptions o;
    o.argv =
        runtime_argv(rt, {"--log=" + log.string(), "--log-format=json", "exec",
                          "--pid-file=" + pid_file.string(), "--process=" + process_file.string()});
    if (console) o.argv.push_back("--console-socket=" + console->path().string());
    o.argv.push_back(id);
    o.stdin_fd = console ? -1 : 0;
    o.hide_mounts = rt.hide_mounts;
    auto pid = spawn(o);
    if (!pid) return Unexpected(pid.error());
    Result<int> status = 0;
    bool killed = false;
    if (console) {
        status = proxy_console(*console, *pid, control.cancel, kill_process);
        killed = control.cancel && control.cancel->load();
    } else {
        status = wait_with_cancel(*pid, control.cancel, kill_process, killed);
    }
    if (killed) return status && *status != 0 ? *status : 137;
    if (!status) return status;
    if (*status != 0) {
        auto errors = runtime_errors(log);
        if (!errors.empty())
            return Unexpected(errors.starts_with(rt.name()) ? errors : rt.name() + ": " + errors);
    }
    return *status;
}

void remove_container(const RuntimeChoice& rt, const std::string& id) {
    delete_container(rt, id); // -f: SIGKILL first (runc and crun)
}

} // namespace factory::runtime
