#include "factory/runtime/rootless.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "factory/runtime/process.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

extern char** environ;

namespace factory::runtime {

namespace fs = std::filesystem;

namespace {

constexpr const char* marker = "FACTORY_ROOTLESS";

std::optional<std::uint32_t> parse_u32(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 0xffffffffULL) return std::nullopt;
    return static_cast<std::uint32_t>(v);
}

std::string user_name(uid_t uid) {
    struct passwd pw {};
    struct passwd* out = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out && out->pw_name)
        return out->pw_name;
    return std::to_string(uid);
}

// The range for one kind of id, or the error a user can act on.
Result<IdRange> subid_range(const char* file, const char* kind, const std::string& user,
                            std::uint32_t id) {
    auto text = read_file(file, 1 << 20);
    auto range = find_subid_range(text ? *text : "", user, id);
    std::string hint = std::string("needs ") + std::to_string(rootless_min_ids) +
                       "; e.g. usermod --add-sub" + kind + "s 100000-165535 " + user;
    if (!range)
        return Unexpected(std::string("rootless: no subordinate ") + kind + " range for " + user +
                          " in " + file + " (" + hint + ")");
    if (range->count < rootless_min_ids)
        return Unexpected(std::string("rootless: the subordinate ") + kind + " range of " + user +
                          " in " + file + " has " + std::to_string(range->count) + " ids (" + hint +
                          ")");
    return *range;
}

std::vector<std::string> map_argv(const std::string& tool, pid_t pid,
                                  const std::vector<IdMapping>& map) {
    std::vector<std::string> argv = {tool, std::to_string(pid)};
    for (const auto& m : map) {
        argv.push_back(std::to_string(m.inside));
        argv.push_back(std::to_string(m.outside));
        argv.push_back(std::to_string(m.count));
    }
    return argv;
}

// What the child says through its pipe once it has unshared (err 0) or failed to.
struct ChildReport {
    int err;
};

// The namespace holder (see run_rootless): new user + mount namespaces, wait for the maps,
// become root there, make the mounts slaves of the host's (host mounts still show up, ours
// don't leak out), say it is ready, and become `factory-init --hold LOCK` for good.
// Between fork and exec only async-signal-safe calls; everything was prepared before.
[[noreturn]] void holder(int report_fd, int go_fd, int lock_fd, char* const* argv,
                         char* const* envp) {
    ChildReport r{0};
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) r.err = errno;
    (void)!::write(report_fd, &r, sizeof r);
    if (r.err != 0) ::_exit(127);
    char go = 0;
    if (::read(go_fd, &go, 1) != 1) ::_exit(127); // the parent gave up: it reports why
    r.err = 0;
    if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0)
        r.err = errno;
    else if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
        r.err = errno;
    (void)::setgroups(0, nullptr); // refused when newgidmap denied setgroups: harmless
    (void)!::write(report_fd, &r, sizeof r);
    if (r.err != 0) ::_exit(127);
    // It outlives the factory that started it: its own session, no terminal, none of the
    // caller's locks (it waits for them to go).
    ::close(lock_fd);
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0)
        for (int fd = 0; fd < 3; ++fd)
            ::dup2(null, fd);
    ::execve(argv[0], argv, envp);
    ::_exit(127);
}

// The worker: joins the holder's namespaces, becomes root there and executes factory again.
[[noreturn]] void worker(int user_fd, int mnt_fd, const char* cwd, char* const* argv,
                         char* const* envp, pid_t parent) {
    auto die = [](const char* what) {
        const char* prefix = "factory: error: rootless: ";
        (void)!::write(2, prefix, std::strlen(prefix));
        (void)!::write(2, what, std::strlen(what));
        (void)!::write(2, "\n", 1);
        ::_exit(1);
    };
    if (::setns(user_fd, CLONE_NEWUSER) != 0) die("cannot join factory's user namespace");
    if (::setns(mnt_fd, CLONE_NEWNS) != 0) die("cannot join factory's mount namespace");
    // Joining a mount namespace moves the working directory to its root: back to ours.
    if (::chdir(cwd) != 0) die("the working directory is not visible in factory's namespace");
    if (::setresgid(0, 0, 0) != 0) die("setresgid(0) in the user namespace failed");
    (void)::setgroups(0, nullptr);
    if (::setresuid(0, 0, 0) != 0) die("setresuid(0) in the user namespace failed");
    // A killed parent takes the build with it, as a killed root factory does (set after the
    // uid change, which clears it).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(137);
    ::execve("/proc/self/exe", argv, envp);
    die("cannot execute /proc/self/exe again");
    ::_exit(127);
}

// The parent passes these on to the child while it waits (a handler needs a global).
volatile pid_t g_child = 0;

void forward(int sig) {
    if (g_child > 0) ::kill(g_child, sig);
}

void ignore(int) {}

class ParentSignals {
  public:
    ParentSignals() {
        int i = 0;
        for (int sig : {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2})
            install(sig, forward, i++);
        // From the terminal, they reach the whole process group, the child included: the
        // parent waits for the child's answer instead of dying first.
        for (int sig : {SIGINT, SIGQUIT})
            install(sig, ignore, i++);
    }
    ~ParentSignals() {
        for (int i = 0; i < 6; ++i)
            ::sigaction(sigs_[i], &old_[i], nullptr);
    }
    ParentSignals(const ParentSignals&) = delete;
    ParentSignals& operator=(const ParentSignals&) = delete;

  private:
    void install(int sig, void (*handler)(int), int slot) {
        struct sigaction sa {};
        sa.sa_handler = handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigs_[slot] = sig;
        ::sigaction(sig, &sa, &old_[slot]);
    }
    int sigs_[6]{};
    struct sigaction old_[6]{};
};

struct ChildGuard {
    pid_t pid = 0;
    ~ChildGuard() {
        if (pid <= 0) return;
        ::kill(pid, SIGKILL);
        int status;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
};

void write_map(const char* tool_name, const std::string& tool, pid_t pid,
               const std::vector<IdMapping>& map) {
    SpawnOptions o;
    o.argv = map_argv(tool, pid, map);
    auto out = run_capture(o);
    if (!out) throw Error(std::string("rootless: ") + tool_name + ": " + out.error());
    if (out->status != 0) {
        std::string text = out->output;
        while (!text.empty() && text.back() == '\n')
            text.pop_back();
        std::string cmd;
        for (const auto& a : o.argv)
            cmd += (cmd.empty() ? "" : " ") + a;
        throw Error(std::string("rootless: ") + cmd + " failed (exit " +
                    std::to_string(out->status) + "): " + text);
    }
}

} // namespace

bool in_user_namespace() {
    auto map = read_file("/proc/self/uid_map", 65536);
    if (!map) return false;
    std::vector<std::string> words;
    std::string w;
    for (char c : *map) {
        if (c == ' ' || c == '\t' || c == '\n') {
            if (!w.empty()) words.push_back(std::move(w));
            w.clear();
        } else {
            w += c;
        }
    }
    if (!w.empty()) words.push_back(std::move(w));
    return !(words.size() == 3 && words[0] == "0" && words[1] == "0" && words[2] == "4294967295");
}

std::optional<RootlessCaller> rootless_caller() {
    const char* v = std::getenv(marker);
    if (!v || !*v) return std::nullopt;
    std::string_view s = v;
    auto colon = s.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto uid = parse_u32(s.substr(0, colon)), gid = parse_u32(s.substr(colon + 1));
    if (!uid || !gid || !in_user_namespace()) return std::nullopt;
    return RootlessCaller{*uid, *gid};
}

Result<void> give_to_caller(const std::string& path) {
    auto caller = rootless_caller();
    if (!caller) return {};
    // Only what the namespace's root owns: factory's own writing, not what was there before.
    auto give = [&](const fs::path& p) -> Result<void> {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0 || st.st_uid != 0) return {};
        if (::lchown(p.c_str(), caller->uid, caller->gid) != 0)
            return Unexpected("cannot chown " + p.string() + " to " + std::to_string(caller->uid) +
                              ":" + std::to_string(caller->gid) + ": " + errno_string(errno));
        return {};
    };
    if (auto r = give(path); !r) return r;
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(path, ec))) return {};
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
        if (auto r = give(it->path()); !r) return r;
    if (ec) return Unexpected("cannot walk " + path + ": " + ec.message());
    return {};
}

std::optional<IdRange> find_subid_range(std::string_view text, std::string_view user,
                                        std::uint32_t id) {
    std::optional<IdRange> best;
    std::string id_text = std::to_string(id);
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? "" : text.substr(nl + 1);
        auto c1 = line.find(':');
        if (c1 == std::string_view::npos) continue;
        auto c2 = line.find(':', c1 + 1);
        if (c2 == std::string_view::npos) continue;
        auto who = line.substr(0, c1);
        if (who != user && who != id_text) continue;
        auto start = parse_u32(line.substr(c1 + 1, c2 - c1 - 1));
        auto count = parse_u32(line.substr(c2 + 1));
        if (!start || !count || *count == 0) continue;
        if (std::uint64_t(*start) + *count > 0x100000000ULL) continue;
        if (!best || *count > best->count) best = IdRange{*start, *count};
    }
    return best;
}

std::vector<IdMapping> rootless_id_map(std::uint32_t id, IdRange sub) {
    std::vector<IdMapping> map;
    if (id >= sub.count) {
        map.push_back({0, sub.start, sub.count});
        map.push_back({id, id, 1});
        return map;
    }
    // Inside 0..count-1: the caller's id is itself, the others take the range in order
    // (count-1 of its ids).
    if (id > 0) map.push_back({0, sub.start, id});
    map.push_back({id, id, 1});
    if (sub.count - 1 - id > 0) map.push_back({id + 1, sub.start + id, sub.count - 1 - id});
    return map;
}

std::string rootless_state_dir(const std::string& store_root) {
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && xdg[0] == '/') {
        struct stat st {};
        if (::stat(xdg, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid() &&
            ::access(xdg, W_OK | X_OK) == 0)
            return (fs::path(xdg) / "factory").string();
    }
    // runc's state is a few small files and a fifo; a short path keeps any future unix socket
    // under the 108-byte limit.
    return (fs::path(store_root) / "run").string();
}

Result<RootlessMaps> rootless_maps() {
    uid_t uid = ::getuid();
    gid_t gid = ::getgid();
    std::string user = user_name(uid);
    RootlessMaps m;
    m.newuidmap = find_program("newuidmap").string();
    m.newgidmap = find_program("newgidmap").string();
    if (m.newuidmap.empty())
        return Unexpected("rootless: newuidmap not found (apt-get install uidmap)");
    if (m.newgidmap.empty())
        return Unexpected("rootless: newgidmap not found (apt-get install uidmap)");
    auto uids = subid_range("/etc/subuid", "uid", user, uid);
    if (!uids) return Unexpected(uids.error());
    auto gids = subid_range("/etc/subgid", "gid", user, gid);
    if (!gids) return Unexpected(gids.error());
    m.uids = rootless_id_map(uid, *uids);
    m.gids = rootless_id_map(gid, *gids);
    return m;
}

namespace {

// The holder recorded in PIDFILE ("PID STARTTIME") when that process still runs.
pid_t live_holder(const fs::path& pid_file) {
    auto text = read_file(pid_file, 256);
    if (!text) return 0;
    char* end = nullptr;
    long pid = std::strtol(text->c_str(), &end, 10);
    unsigned long long start = end ? std::strtoull(end, nullptr, 10) : 0;
    if (pid <= 0 || start == 0) return 0;
    return process_start_time(static_cast<pid_t>(pid)) == start ? static_cast<pid_t>(pid) : 0;
}

// Starts the holder of the store's namespaces and returns its pid once it is ready.
pid_t start_holder(const RootlessMaps& maps, const fs::path& lock_path, int lock_fd) {
    std::string program = init_program().string();
    std::vector<std::string> args = {program, "--hold", lock_path.string()};
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    char* envp[] = {nullptr};

    int report[2], go[2];
    if (::pipe2(report, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0)
        throw Error("rootless: pipe: " + errno_string(errno));
    Fd report_rd(report[0]), report_wr(report[1]), go_rd(go[0]), go_wr(go[1]);
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) throw Error("rootless: fork: " + errno_string(errno));
    if (pid == 0) holder(report_wr.get(), go_rd.get(), lock_fd, argv.data(), envp);
    ChildGuard guard{pid};
    report_wr.reset();
    go_rd.reset();

    auto read_report = [&](const char* when) {
        ChildReport r{-1};
        ssize_t n;
        do
            n = ::read(report_rd.get(), &r, sizeof r);
        while (n < 0 && errno == EINTR);
        if (n != static_cast<ssize_t>(sizeof r))
            throw Error(std::string("rootless: the namespace process died ") + when);
        return r.err;
    };
    if (int err = read_report("before it could report"); err != 0)
        throw Error("rootless: cannot create a user namespace: " + errno_string(err) +
                    " (the kernel must allow unprivileged user namespaces: sysctl "
                    "user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1 where it "
                    "exists, and no AppArmor restriction on them)");
    write_map("newuidmap", maps.newuidmap, pid, maps.uids);
    write_map("newgidmap", maps.newgidmap, pid, maps.gids);
    char ok = 1;
    if (::write(go_wr.get(), &ok, 1) != 1)
        throw Error("rootless: cannot start the namespace process: " + errno_string(errno));
    if (int err = read_report("while becoming root in its namespace"); err != 0)
        throw Error("rootless: becoming root in the user namespace failed: " + errno_string(err));
    guard.pid = 0; // it lives on; init reaps it
    return pid;
}

} // namespace

int run_rootless(const RootlessEntry& entry, const RootlessMaps& maps) {
    // The store's top directory belongs to the caller (what is inside to namespace ids), and
    // so do the files that find the store's namespace holder.
    std::error_code ec;
    fs::create_directories(entry.store_root, ec);
    fs::path root = entry.store_root;
    fs::path lock_path = root / "userns.lock", pid_path = root / "userns.pid";

    // Held shared for as long as this factory (and what it leaves running, like the end of
    // a shell environment) lives; the holder leaves when nobody holds it. Not close-on-exec:
    // the factory inside inherits it.
    Fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW, 0600));
    if (!lock)
        throw Error("rootless: cannot open " + lock_path.string() + ": " + errno_string(errno));
    while (::flock(lock.get(), LOCK_SH) != 0)
        if (errno != EINTR)
            throw Error("rootless: flock " + lock_path.string() + ": " + errno_string(errno));
    // A holder that saw the last user leave is on its way out: it held the lock exclusively,
    // so it let go just before this shared lock was granted, and its pid file may still name
    // it (alive for a moment, or a zombie whose namespaces can no longer be opened). Wait for
    // it to go, then start a new one.
    pid_t holder_pid = 0;
    Fd user_ns, mnt_ns;
    for (int attempt = 0;; ++attempt) {
        holder_pid = live_holder(pid_path);
        if (holder_pid == 0) {
            Fd create(::open((root / "userns.create.lock").c_str(),
                             O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
            if (!create || ::flock(create.get(), LOCK_EX) != 0)
                throw Error("rootless: cannot lock " + (root / "userns.create.lock").string() +
                            ": " + errno_string(errno));
            holder_pid = live_holder(pid_path);
            if (holder_pid == 0) {
                holder_pid = start_holder(maps, lock_path, lock.get());
                write_file_atomic(pid_path,
                                  std::to_string(holder_pid) + " " +
                                      std::to_string(process_start_time(holder_pid)) + "\n",
                                  0600);
            }
        }
        user_ns = Fd(::open(("/proc/" + std::to_string(holder_pid) + "/ns/user").c_str(),
                            O_RDONLY | O_CLOEXEC));
        mnt_ns = Fd(::open(("/proc/" + std::to_string(holder_pid) + "/ns/mnt").c_str(),
                           O_RDONLY | O_CLOEXEC));
        if (user_ns && mnt_ns && live_holder(pid_path) == holder_pid) break;
        if (attempt == 200) // 2 s: a holder that neither lives nor goes
            throw Error("rootless: the namespace holder (pid " + std::to_string(holder_pid) +
                        ") went away; run the command again");
        ::usleep(10'000);
    }

    uid_t uid = ::getuid();
    gid_t gid = ::getgid();
    std::string cwd = fs::current_path(ec).string();
    if (ec) cwd = "/";

    // Everything the worker needs, prepared before fork.
    std::vector<std::string> env_strings;
    auto overridden = [&](std::string_view e) {
        for (const auto& x : entry.extra_env)
            if (e.substr(0, e.find('=') + 1) == std::string_view(x).substr(0, x.find('=') + 1))
                return true;
        return e.starts_with(std::string(marker) + "=") || e.starts_with("FACTORY_CACHE=");
    };
    for (char** e = environ; e && *e; ++e)
        if (!overridden(*e)) env_strings.emplace_back(*e);
    env_strings.push_back(std::string(marker) + "=" + std::to_string(uid) + ":" +
                          std::to_string(gid));
    env_strings.push_back("FACTORY_CACHE=" + entry.store_root);
    for (const auto& e : entry.extra_env)
        env_strings.push_back(e);
    std::vector<char*> envp, argv;
    for (auto& e : env_strings)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = entry.argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    std::fflush(stdout);
    std::fflush(stderr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw Error("rootless: fork: " + errno_string(errno));
    if (pid == 0)
        worker(user_ns.get(), mnt_ns.get(), cwd.c_str(), argv.data(), envp.data(), parent);
    ChildGuard guard{pid};

    int status = 0;
    {
        g_child = pid;
        ParentSignals signals;
        while (::waitpid(pid, &status, 0) < 0)
            if (errno != EINTR) throw Error("rootless: waitpid: " + errno_string(errno));
        g_child = 0;
    }
    guard.pid = 0;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

} // namespace factory::runtime
