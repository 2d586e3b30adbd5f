#include "factory/shell/session.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <thread>

#include "factory/builder/builder.hpp"
#include "factory/oci/layout.hpp"
#include "factory/recipe/parser.hpp"
#include "factory/runtime/in_root.hpp"
#include "factory/runtime/process.hpp"
#include "factory/runtime/rootless.hpp"
#include "factory/runtime/rootfs.hpp"
#include "factory/runtime/runtime.hpp"
#include "factory/runtime/snapshot_store.hpp"
#include "factory/shell/environment.hpp"
#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/progress.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/strings.hpp"

extern char** environ;

namespace factory::shell {

namespace {

constexpr std::uint64_t max_account_file = 1 << 20;

// ---- the image ----------------------------------------------------------------------------

struct Target {
    std::string display; // "hello:latest", the REF as given
    std::string name;    // image name without tag ("" for a digest)
    std::string digest;  // manifest digest
    std::optional<recipe::Recipe> recipe;
};

bool is_recipe(const std::string& target) {
    return target.ends_with(".toml");
}

// A recipe is built first (a cache hit is a no-op) with args, `build` (--cache-from, registry
// options) and, for its RUN steps, runtime.
Target resolve_target(const fs::path& store_root, const std::string& target,
                      const std::map<std::string, std::string>& args,
                      const builder::BuildOptions& build, const std::string& runtime) {
    Target t;
    if (is_recipe(target)) {
        // As given: errors name the recipe the way the user wrote it, as `build` and `why` do
        // (the loader makes it absolute for everything else).
        fs::path file = target;
        recipe::LoadOptions lo;
        lo.source_date_epoch = builder::source_date_epoch_from_env();
        lo.args = args;
        t.recipe = recipe::load(file, lo); // a recipe error: Error(usage), passed through
        builder::BuildOptions bo = build;
        bo.store_root = store_root;
        bo.source_date_epoch = lo.source_date_epoch;
        bo.args = args;
        bo.runtime = runtime;
        Progress quiet(ProgressMode::quiet);
        auto result = builder::build_recipe(file, bo, quiet);
        t.digest = result.manifest_digest;
        t.name = result.name;
        t.display = result.name + ":" + (result.tags.empty() ? "latest" : result.tags.front());
        return t;
    }
    if (!args.empty())
        throw usage_error("--arg " + args.begin()->first +
                          ": only a recipe takes --arg, not the "
                          "image " +
                          target);
    if (!build.cache_from.empty())
        throw usage_error("--cache-from " + build.cache_from.front() +
                          ": only a recipe is built, not the image " + target);
    t.display = target;
    t.digest = target; // a digest (prefix) is made whole by load_image
    bool digest = target.starts_with("sha256:") ||
                  (target.size() >= oci::min_digest_prefix &&
                   target.find_first_not_of("0123456789abcdef") == std::string::npos);
    t.name = digest ? "" : strip_tag(target);
    return t;
}

struct Image {
    std::string digest; // the manifest's
    oci::Manifest manifest;
    oci::ImageConfig config;
};

// Opens the store read-only and loads the image `ref` (a ref or a manifest digest).
Image load_image(const fs::path& store_root, const std::string& ref, const std::string& shown,
                 std::optional<oci::Layout>& store) {
    std::error_code ec;
    if (!fs::exists(store_root / "index.json", ec))
        throw usage_error("no image '" + shown + "' in the store " + store_root.string());
    store.emplace(oci::Layout::open(store_root));
    auto desc = store->resolve(ref);
    if (!desc) throw usage_error("no image '" + shown + "' in the store " + store_root.string());
    auto manifest = value_or_throw(store->read_manifest(*desc));
    auto config = value_or_throw(store->read_config(manifest.config, manifest.layers.size()));
    return {desc->digest, std::move(manifest), std::move(config)};
}

// ---- files inside the root ----------------------------------------------------------------

// Reads DIR/NAME of the container's root (DIR resolved inside it, NAME not followed).
std::optional<std::string> read_in_root(const fs::path& root, const char* dir, const char* name) {
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) return std::nullopt;
    auto d = runtime::open_dir_in_root(root_fd.get(), dir, runtime::Resolver::automatic, false);
    if (!d) return std::nullopt;
    Fd fd(::openat(d->get(), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_size) > max_account_file)
        return std::nullopt;
    std::string out(static_cast<std::size_t>(st.st_size), '\0');
    auto n = read_some(fd.get(), out.data(), out.size());
    out.resize(n ? *n : 0);
    return out;
}

// True if DIR/NAME exists in the root (NAME itself not followed).
bool exists_in_root(const fs::path& root, const char* dir, const char* name) {
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) return false;
    auto d = runtime::open_dir_in_root(root_fd.get(), dir, runtime::Resolver::automatic, false);
    if (!d) return false;
    struct stat st {};
    return ::fstatat(d->get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t p = 0;
    for (;;) {
        auto c = s.find(sep, p);
        out.push_back(s.substr(p, c == std::string::npos ? std::string::npos : c - p));
        if (c == std::string::npos) break;
        p = c + 1;
    }
    return out;
}

// Calls fn(fields) for each line of a passwd/group text; stops when fn returns true.
void for_each_entry(const std::string& text,
                    const std::function<bool(const std::vector<std::string>&)>& fn) {
    for (const auto& line : split(text, '\n')) {
        if (line.empty() || line[0] == '#') continue;
        if (fn(split(line, ':'))) return;
    }
}

std::uint32_t to_id(const std::string& s) {
    return static_cast<std::uint32_t>(std::stoul(s));
}

// USER[:GROUP] (names or numbers) → ids, names looked up in the root's /etc.
std::pair<std::uint32_t, std::uint32_t> resolve_user(const fs::path& root, const std::string& user,
                                                     const std::string& what) {
    if (user.empty()) return {0, 0};
    auto colon = user.find(':');
    std::string u = user.substr(0, colon);
    std::string g = colon == std::string::npos ? "" : user.substr(colon + 1);
    auto passwd = read_in_root(root, "etc", "passwd").value_or("");
    std::optional<std::uint32_t> uid, gid;
    for_each_entry(passwd, [&](const std::vector<std::string>& f) {
        if (f.size() < 4) return false;
        if ((all_digits(u) && f[2] == u) || f[0] == u) {
            if (all_digits(f[2])) uid = to_id(f[2]);
            if (all_digits(f[3])) gid = to_id(f[3]);
            return true;
        }
        return false;
    });
    if (all_digits(u)) uid = to_id(u);
    if (!uid) throw usage_error(what + ": user '" + u + "' is not in the image's /etc/passwd");
    if (!g.empty()) {
        if (all_digits(g)) {
            gid = to_id(g);
        } else {
            gid.reset();
            for_each_entry(read_in_root(root, "etc", "group").value_or(""),
                           [&](const std::vector<std::string>& f) {
                               if (f.size() >= 3 && f[0] == g && all_digits(f[2])) {
                                   gid = to_id(f[2]);
                                   return true;
                               }
                               return false;
                           });
            if (!gid)
                throw usage_error(what + ": group '" + g + "' is not in the image's /etc/group");
        }
    }
    return {*uid, gid.value_or(0)};
}

// ---- environment --------------------------------------------------------------------------

void set_env(std::vector<std::string>& env, const std::string& name, const std::string& value) {
    for (auto& e : env)
        if (e.compare(0, name.size() + 1, name + "=") == 0) {
            e = name + "=" + value;
            return;
        }
    env.push_back(name + "=" + value);
}

void set_env(std::vector<std::string>& env, const std::string& kv) {
    auto eq = kv.find('=');
    set_env(env, kv.substr(0, eq), kv.substr(eq + 1));
}

// ---- mounts -------------------------------------------------------------------------------

bool clean_absolute(const std::string& p) {
    if (p.empty() || p[0] != '/') return false;
    for (const auto& c : split(p, '/'))
        if (c == "..") return false;
    return true;
}

// Parents before children, so a deeper mount is not hidden by a shallower one.
void order_mounts(std::vector<runtime::Mount>& mounts) {
    auto depth = [](const std::string& p) {
        return std::count(p.begin(), p.end(), '/') - (p.size() > 1 && p.back() == '/' ? 1 : 0);
    };
    std::stable_sort(mounts.begin(), mounts.end(), [&](const auto& a, const auto& b) {
        return depth(a.destination) < depth(b.destination);
    });
}

void add_bind(runtime::RunSpec& spec, const std::string& src, const std::string& dst,
              bool ro = false) {
    std::string d = dst;
    while (d.size() > 1 && d.back() == '/')
        d.pop_back();
    for (const auto& m : spec.mounts)
        if (m.destination == d) return; // first one wins
    spec.mounts.push_back({d, src, "bind", {"rbind", ro ? "ro" : "rw"}});
}

// ---- signals ------------------------------------------------------------------------------

char g_children_path[64];

// Set by SIGHUP: the terminal went away; by SIGTERM: factory was told to stop. A signal handler
// may only store to a lock-free atomic.
std::atomic<bool> g_hung_up{false};
std::atomic<bool> g_terminated{false};
static_assert(std::atomic<bool>::is_always_lock_free);

// SIGTERM/SIGHUP sent to factory alone: passed on to the runtime (which passes it on to the
// container's process). SIGINT/SIGQUIT from the terminal reach the runtime directly (same
// process group): factory waits for the container's exit status instead of dying first.
void forward_signal(int sig) {
    int saved = errno;
    if (sig == SIGHUP) g_hung_up.store(true);
    if (sig == SIGTERM) g_terminated.store(true);
    int fd = ::open(g_children_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[256];
        ssize_t n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        long pid = 0;
        for (ssize_t i = 0; i < n; ++i) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                pid = pid * 10 + (buf[i] - '0');
            } else {
                if (pid > 0) ::kill(static_cast<pid_t>(pid), sig);
                pid = 0;
            }
        }
        if (pid > 0) ::kill(static_cast<pid_t>(pid), sig);
    }
    errno = saved;
}

void ignore_signal(int) {}

class SignalGuard {
  public:
    SignalGuard() {
        std::snprintf(g_children_path, sizeof g_children_path, "/proc/%d/task/%d/children",
                      static_cast<int>(::getpid()), static_cast<int>(::gettid()));
        install(SIGINT, ignore_signal, 0);
        install(SIGQUIT, ignore_signal, 1);
        install(SIGTERM, forward_signal, 2);
        install(SIGHUP, forward_signal, 3);
    }
    ~SignalGuard() {
        int sigs[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
        for (int i = 0; i < 4; ++i)
            ::sigaction(sigs[i], &old_[i], nullptr);
    }
    SignalGuard(const SignalGuard&) = delete;
    SignalGuard& operator=(const SignalGuard&) = delete;

  private:
    void install(int sig, void (*handler)(int), int slot) {
        struct sigaction sa {};
        sa.sa_handler = handler; // a handler (not SIG_IGN): reset to the default across exec
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        ::sigaction(sig, &sa, &old_[slot]);
    }
    struct sigaction old_[4]{};
};

// The runtime couldn't start the command: exit 127 when it doesn't exist, 126 when it can't be
// executed (as shells and `docker run` do), else 1.
[[noreturn]] void throw_start_failure(const std::string& message) {
    std::string m = message;
    for (auto& c : m)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    auto code = ExitCode::failure;
    if (m.find("not found") != std::string::npos || m.find("no such file") != std::string::npos)
        code = ExitCode::not_found;
    else if (m.find("permission denied") != std::string::npos)
        code = ExitCode::cannot_execute;
    throw Error(message, code);
}

// A closed terminal must end its session, as it ends a shell outside a container. Forwarding
// SIGHUP is not always enough: a shell may ignore it (busybox ash does while it waits for
// input), and the pty stays open (the runtime, or factory for crun, holds its master), so the
// shell would wait for input forever. After the grace (a shell that handles SIGHUP, like bash,
// exits by itself and saves its history), `cancel` makes exec_in kill the shell's process.
constexpr auto hangup_grace = std::chrono::seconds(2);

// Sets `cancel` once `signalled` has been true for `grace` (unless stopped first).
void cancel_after(const std::stop_token& stop, const std::atomic<bool>& signalled,
                  std::chrono::milliseconds grace, std::atomic<bool>& cancel) {
    using namespace std::chrono_literals;
    while (!stop.stop_requested() && !signalled.load())
        std::this_thread::sleep_for(50ms);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (!stop.stop_requested() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(50ms);
    if (!stop.stop_requested()) cancel.store(true);
}

// ---- the run ------------------------------------------------------------------------------

// --runtime, else $FACTORY_RUNTIME, else the default choice (runtime.hpp). A terminal works
// with either: with crun factory holds the pty itself (console.hpp), runc handles its own.
runtime::RuntimeChoice runtime_for(const std::string& flag) {
    if (!flag.empty()) {
        auto r = runtime::choose_runtime(flag);
        if (!r) throw usage_error("--runtime " + flag + ": " + r.error());
        return std::move(*r);
    }
    auto r = runtime::choose_runtime("");
    if (!r) throw Error("no OCI runtime: " + r.error());
    return std::move(*r);
}

// The image's layer snapshots, top layer first (unpacked on first use).
std::vector<fs::path> image_lowers(const fs::path& store_root, oci::Layout& store,
                                   const Image& image) {
    runtime::SnapshotStore snapshots(store_root, store.blobs());
    auto diff_ids = image.config.diff_ids();
    const auto& layers = image.manifest.layers;
    if (diff_ids.size() != layers.size())
        throw Error("the image's config lists " + std::to_string(diff_ids.size()) +
                    " diff_ids for " + std::to_string(layers.size()) + " layers");
    std::vector<fs::path> lowers;
    for (std::size_t i = layers.size(); i-- > 0;) {
        auto path = snapshots.ensure(diff_ids[i], layers[i]);
        if (!path) throw Error("layer " + layers[i].digest + ": " + path.error());
        lowers.push_back(*path);
    }
    return lowers;
}

// Assembles the root file system for spec (its mounts and files must be final as paths:
// they become the overlay's stubs), lets `prepare` finish the spec against the mounted root,
// runs the container with the output passed through and returns its exit code. Nothing
// (mount, container, scratch directory) outlives the call.
// A SIGTERM is passed on at once; if the command is still running `stop_timeout` later, the
// container is killed and 128 + SIGTERM returned, as `docker stop` ends a container.
int run_in_image(const fs::path& store_root, oci::Layout& store, const Image& image,
                 const std::string& runtime_flag, std::chrono::milliseconds stop_timeout,
                 runtime::RunSpec spec, const std::function<void(runtime::RunSpec&)>& prepare) {
    auto choice = runtime_for(runtime_flag);
    const runtime::RuntimeChoice* rt = &choice;

    // Shared store lock for the whole run: `cache prune` (exclusive) neither removes the
    // snapshots under the overlay nor the scratch directory in ROOT/tmp meanwhile.
    auto lease = cache::StoreLock::build(store_root);
    auto lowers = image_lowers(store_root, store, image);

    std::error_code ec;
    fs::create_directories(store_root / "tmp", ec);
    if (ec) throw Error("cannot create " + (store_root / "tmp").string() + ": " + ec.message());
    order_mounts(spec.mounts);
    TempDir scratch(store_root / "tmp", "shell-");
    auto rootfs =
        runtime::Rootfs::create(scratch.path() / "fs", lowers, runtime::mount_targets(spec));
    if (!rootfs) throw Error("cannot assemble the root file system: " + rootfs.error());
    spec.rootfs = rootfs->merged();
    prepare(spec);

    // No terminal here (`factory run`; shells run in environments), so no hangup to watch.
    Result<int> code = 0;
    std::atomic<bool> kill{false};
    {
        runtime::RunControl control;
        control.cancel = &kill;
        g_terminated.store(false);
        std::jthread stop_watch([&kill, stop_timeout](const std::stop_token& stop) {
            cancel_after(stop, g_terminated, stop_timeout, kill);
        });
        SignalGuard signals;
        code = runtime::run_container(spec, *rt, {}, control);
    } // the watch stops and is joined here
    (void)rootfs->unmount();
    if (kill.load()) {
        std::fprintf(stderr, "factory: the command did not stop within %s of SIGTERM: killed\n",
                     human_duration(stop_timeout.count() / 1000).c_str());
        return 128 + SIGTERM;
    }
    if (!code) throw_start_failure(code.error());
    return *code;
}

// ---- environments -------------------------------------------------------------------------

constexpr const char* init_path = "/.factory-init";

struct EnvIdentity {
    std::string key;      // everything fixed when the container starts
    std::string hostname; // the name's first part
    std::string image, digest, target, project;
    std::uint32_t uid = 0;
};

// Ends the environment `id` (whose lock the caller holds) without making the caller wait: a
// child process inherits the lock (flock belongs to the open file, which fork shares), ends the
// environment and exits; a shell starting meanwhile waits for the lock. Done in place when this
// process has other threads (fork would copy their locks, not them) or fork fails.
void end_in_background(const Environments& envs, const std::string& id, const EnvRecord& record) {
    std::error_code ec;
    auto tasks = std::distance(fs::directory_iterator("/proc/self/task", ec), {});
    pid_t child = !ec && tasks == 1 ? ::fork() : -1;
    if (child == 0) {
        ::setsid();
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0)
            for (int fd = 0; fd < 3; ++fd)
                ::dup2(null, fd);
        int code = 0;
        try {
            envs.end(id, record);
        } catch (const std::exception&) {
            code = 1; // left for the next look (ps, shell, --stop) to end
        }
        ::_exit(code);
    }
    if (child < 0) envs.end(id, record);
}

// Runs spec's process in the environment `who` names: joins it when it is running with live
// shells, else starts it (ending what a killed one left). `prepare` finishes the spec against
// the environment's mounted root; `on_ready(joined, record)` is called just before the process
// starts. The last shell out ends the environment.
int run_in_environment(const fs::path& store_root, oci::Layout& store, const Image& image,
                       const EnvIdentity& who, const std::string& runtime_flag,
                       runtime::RunSpec spec, const std::function<void(runtime::RunSpec&)>& prepare,
                       const std::function<void(bool, const EnvRecord&)>& on_ready) {
    Environments envs(store_root);
    const std::string id = Sha256::hex(who.key).substr(0, 16);
    EnvRecord record;
    bool joined = false;
    cache::FileLock session;
    {
        auto lock = envs.lock(id);
        auto existing = envs.read(id);
        std::error_code ec;
        if (existing && Environments::running(*existing) && envs.live_sessions(id) > 0) {
            joined = true;
            record = *existing;
            spec.rootfs = envs.merged(id);
            prepare(spec);
        } else {
            if (existing || fs::exists(envs.dir(id), ec)) envs.end(id, existing);
            auto rt = runtime_for(runtime_flag);
            // Until env.json names its snapshots, `cache prune` must wait: it keeps what
            // running environments list, and nothing else.
            auto lease = cache::StoreLock::build(store_root);
            auto lowers = image_lowers(store_root, store, image);
            for (const auto& l : lowers)
                record.lowers.push_back(l.filename().string());
            add_bind(spec, runtime::init_program().string(), init_path, true);
            order_mounts(spec.mounts);
            fs::create_directories(envs.bundle(id), ec);
            if (ec) throw Error("cannot create " + envs.bundle(id).string() + ": " + ec.message());
            try {
                auto rootfs = runtime::Rootfs::create(envs.rootfs_dir(id), lowers,
                                                      runtime::mount_targets(spec));
                if (!rootfs) throw Error("cannot assemble the root file system: " + rootfs.error());
                spec.rootfs = rootfs->merged();
                prepare(spec);
                runtime::RunSpec init = spec;
                init.args = {init_path};
                init.env.clear();
                init.cwd = "/";
                init.uid = init.gid = 0;
                init.extra_gids.clear();
                init.terminal = false;
                init.pass_stdin = false;
                init.no_new_privileges = true;
                init.own_cgroup = false; // no limits to enforce; starts sooner
                record.id = id;
                record.name = who.hostname + "-" + id.substr(0, 8);
                record.image = who.image;
                record.digest = who.digest;
                record.target = who.target;
                record.project = who.project;
                record.uid = who.uid;
                record.container = "factory-env-" + id;
                record.runtime = rt.name();
                record.runtime_binary = rt.binary.string();
                record.runtime_version = rt.version;
                record.state_root = rt.state_root.string();
                record.hide_mounts = rt.hide_mounts;
                auto pid = runtime::start_detached(init, rt, record.container, envs.bundle(id));
                if (!pid) throw Error("cannot start the environment: " + pid.error());
                record.init_pid = *pid;
                record.init_start = runtime::process_start_time(*pid);
                if (record.init_start == 0)
                    throw Error("cannot start the environment: its process 1 (" +
                                runtime::init_program().string() + " at " + init_path +
                                ") exited at once");
                record.created = static_cast<std::int64_t>(::time(nullptr));
                rootfs->release(); // the environment owns the mount now
                envs.write(record);
            } catch (...) {
                try {
                    envs.end(id, record.init_pid > 0 ? std::optional(record) : std::nullopt);
                } catch (const std::exception&) {
                }
                throw;
            }
        }
        session = envs.add_session(id);
    }

    on_ready(joined, record);
    fs::path exec_dir = envs.dir(id) / "exec";
    std::error_code ec;
    fs::create_directories(exec_dir, ec);
    Result<int> code = 0;
    std::atomic<bool> cancel{false};
    {
        // A closed terminal ends this shell's process (not the environment: other shells may
        // be in it) once a shell that handles SIGHUP had the grace to exit by itself.
        runtime::RunControl control;
        std::jthread hangup_watch;
        if (spec.terminal) {
            control.cancel = &cancel;
            hangup_watch = std::jthread([&cancel](const std::stop_token& stop) {
                cancel_after(stop, g_hung_up, hangup_grace, cancel);
            });
        }
        g_hung_up.store(false);
        SignalGuard signals;
        code = runtime::exec_in(record.runtime_choice(), record.container, spec,
                                exec_dir / (std::to_string(::getpid()) + ".json"), control);
    } // the watch stops and is joined here: this process is single-threaded again

    bool stopped = false;
    {
        auto lock = envs.lock(id);
        session.unlock(); // this shell leaves
        auto now = envs.read(id);
        stopped = !now || now->init_start != record.init_start;
        if (!stopped && envs.live_sessions(id) == 0) end_in_background(envs, id, *now);
        // No record: ended by --stop (the container is gone already) or its directory was
        // removed under it; under the lock no other environment of this id is starting, so
        // the container of that name is ours to remove. (A new record means a new
        // environment with the same container name: not ours.)
        if (!now) runtime::remove_container(record.runtime_choice(), record.container);
    }
    if (stopped) {
        std::fprintf(stderr, "factory: the environment %s was stopped\n", record.name.c_str());
        if (!code) return 137;
    }
    if (!code) throw_start_failure(code.error());
    if (cancel.load()) return 128 + SIGHUP;
    return *code;
}

std::string host_user_name(std::uint32_t uid) {
    if (uid == 0) return "root";
    struct passwd pw {};
    struct passwd* out = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out && out->pw_name &&
        *out->pw_name)
        return out->pw_name;
    return "user";
}

std::uint32_t env_id(const char* name, std::uint32_t fallback) {
    const char* v = std::getenv(name);
    if (!v || !all_digits(v)) return fallback;
    try {
        return to_id(v);
    } catch (const std::exception&) {
        return fallback;
    }
}

std::string git_toplevel(const fs::path& dir) {
    fs::path git = runtime::find_program("git");
    if (git.empty()) return {};
    runtime::SpawnOptions o;
    o.argv = {git.string(), "-C", dir.string(), "rev-parse", "--show-toplevel"};
    o.die_with_parent = true;
    auto r = runtime::run_capture(o);
    if (!r || r->status != 0) return {};
    std::string out = r->output;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
        out.pop_back();
    if (out.empty() || out[0] != '/' || out.find('\n') != std::string::npos) return {};
    return out;
}

bool is_shell_program(const std::vector<std::string>& argv) {
    if (argv.empty()) return false;
    static const char* shells[] = {"sh", "bash", "zsh", "fish", "dash", "ash", "ksh", "mksh"};
    auto base = fs::path(argv[0]).filename().string();
    for (auto* s : shells)
        if (base == s) return true;
    return false;
}

bool inside(const fs::path& dir, const fs::path& p) {
    auto d = dir.string(), s = p.string();
    if (d == "/") return true;
    return s == d || (s.size() > d.size() && s.compare(0, d.size(), d) == 0 && s[d.size()] == '/');
}

void check_volume_name(const std::string& name) {
    if (name.empty() || name.find('/') != std::string::npos ||
        name.find("..") != std::string::npos || name == ".")
        throw usage_error("volume name '" + name +
                          "': expected a name ([A-Za-z0-9][A-Za-z0-9._-]*), not a path");
}

} // namespace

// ---- helpers ------------------------------------------------------------------------------

std::string strip_tag(const std::string& ref) {
    auto at = ref.find('@');
    std::string r = ref.substr(0, at);
    auto slash = r.rfind('/');
    auto colon = r.rfind(':');
    if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
        r = r.substr(0, colon);
    return r;
}

std::string hostname_for(const std::string& image_name) {
    std::string n = strip_tag(image_name);
    if (auto slash = n.rfind('/'); slash != std::string::npos) n = n.substr(slash + 1);
    std::string out;
    for (char c : n) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        out += (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
    }
    while (!out.empty() && out.front() == '-')
        out.erase(out.begin());
    if (out.size() > 63) out.resize(63);
    while (!out.empty() && out.back() == '-')
        out.pop_back();
    return out.empty() ? "factory" : out;
}

std::vector<std::string> passthrough_env(const std::vector<std::string>& extra, char** envp) {
    static const char* fixed[] = {"TERM",     "COLORTERM",       "LANG",        "SSH_AUTH_SOCK",
                                  "DISPLAY",  "WAYLAND_DISPLAY", "http_proxy",  "https_proxy",
                                  "no_proxy", "HTTP_PROXY",      "HTTPS_PROXY", "NO_PROXY",
                                  "TZ"};
    std::vector<std::string> out;
    for (char** e = envp; e && *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) continue;
        std::string name = kv.substr(0, eq);
        bool pass = name.starts_with("LC_") || name == "LANGUAGE";
        for (auto* f : fixed)
            pass = pass || name == f;
        for (const auto& x : extra)
            pass = pass || name == x;
        if (pass) out.push_back(kv);
    }
    return out;
}

std::string passwd_with(std::string text, std::uint32_t uid, std::uint32_t gid,
                        const std::string& name, const std::string& home, std::string* name_out) {
    std::string found;
    bool name_taken = false;
    for_each_entry(text, [&](const std::vector<std::string>& f) {
        if (f.size() >= 3 && f[2] == std::to_string(uid)) {
            found = f[0];
            return true;
        }
        if (!f.empty() && f[0] == name) name_taken = true;
        return false;
    });
    if (!found.empty()) {
        if (name_out) *name_out = found;
        return text;
    }
    std::string n = name_taken ? "user" + std::to_string(uid) : name;
    if (!text.empty() && text.back() != '\n') text += '\n';
    text += n + ":x:" + std::to_string(uid) + ":" + std::to_string(gid) + ":" + n + ":" + home +
            ":/bin/sh\n";
    if (name_out) *name_out = n;
    return text;
}

std::string group_with(std::string text, std::uint32_t gid, const std::string& name) {
    bool found = false, name_taken = false;
    for_each_entry(text, [&](const std::vector<std::string>& f) {
        if (f.size() >= 3 && f[2] == std::to_string(gid)) {
            found = true;
            return true;
        }
        if (!f.empty() && f[0] == name) name_taken = true;
        return false;
    });
    if (found) return text;
    if (!text.empty() && text.back() != '\n') text += '\n';
    text +=
        (name_taken ? "group" + std::to_string(gid) : name) + ":x:" + std::to_string(gid) + ":\n";
    return text;
}

// ---- factory run --------------------------------------------------------------------------

int run_image(const RunOptions& o) {
    if (o.network != "host" && o.network != "none")
        throw usage_error("--network " + o.network + ": expected host or none");
    runtime::RunSpec spec;
    spec.terminal = false;
    spec.pass_stdin = o.interactive;
    spec.own_cgroup = false;
    spec.network = o.network == "host";
    for (const auto& m : o.mounts) {
        auto parts = split(m, ':');
        bool ro = false;
        if (parts.size() == 3 && (parts[2] == "ro" || parts[2] == "rw")) {
            ro = parts[2] == "ro";
            parts.pop_back();
        }
        if (parts.size() != 2 || parts[0].empty() || !clean_absolute(parts[1]))
            throw usage_error("--mount " + m + ": expected SRC:DST[:ro] with DST absolute");
        std::error_code ec;
        fs::path src = fs::absolute(parts[0], ec);
        if (!fs::exists(src, ec))
            throw usage_error("--mount " + m + ": " + src.string() + " does not exist");
        add_bind(spec, src.string(), parts[1], ro);
    }
    for (const auto& e : o.env)
        if (auto eq = e.find('='); eq == std::string::npos || eq == 0)
            throw usage_error("--env " + e + ": expected NAME=VALUE");
    if (!o.workdir.empty() && !clean_absolute(o.workdir))
        throw usage_error("--workdir " + o.workdir + ": expected an absolute path");
    if (!o.user.empty()) {
        auto parts = split(o.user, ':');
        if (parts.size() > 2 || !all_digits(parts[0]) ||
            (parts.size() == 2 && !all_digits(parts[1])))
            throw usage_error("--user " + o.user + ": expected UID[:GID] (numbers)");
    }

    Target t = resolve_target(o.store_root, o.target, o.build_args, o.build, o.runtime);
    std::optional<oci::Layout> store;
    Image image = load_image(o.store_root, t.digest, t.display, store);
    t.digest = image.digest; // what a name or a digest prefix resolved to

    spec.env = image.config.env();
    for (const auto& e : o.env)
        set_env(spec.env, e);
    spec.cwd = !o.workdir.empty()                   ? o.workdir
               : image.config.working_dir().empty() ? "/"
                                                    : image.config.working_dir();
    if (!o.args.empty()) {
        spec.args = o.args;
    } else {
        spec.args = image.config.entrypoint();
        for (const auto& a : image.config.cmd())
            spec.args.push_back(a);
        if (spec.args.empty())
            throw usage_error("the image " + t.display +
                              " has no Entrypoint or Cmd: give a command after --");
    }
    // factory-init runs the command as its child (as `docker run --init`): signals reach it,
    // orphans are reaped (factory/init/factory_init.cpp).
    add_bind(spec, runtime::init_program().string(), init_path, true);
    spec.args.insert(spec.args.begin(), {init_path, "--"});
    std::string user = o.user.empty() ? image.config.user() : o.user;
    return run_in_image(o.store_root, *store, image, o.runtime,
                        std::chrono::seconds(o.stop_timeout), std::move(spec),
                        [&](runtime::RunSpec& s) {
                            auto [uid, gid] = resolve_user(s.rootfs, user, "--user");
                            s.uid = uid;
                            s.gid = gid;
                        });
}

// ---- factory shell ------------------------------------------------------------------------

int run_shell(const ShellOptions& o) {
    if (!o.home.empty() && o.home != "host" && o.home != "persistent")
        throw usage_error("--home " + o.home + ": expected host or persistent");
    std::error_code ec;
    fs::path project;
    if (!o.project.empty()) {
        project = fs::absolute(o.project, ec);
        if (!fs::is_directory(project, ec))
            throw usage_error("--project " + o.project + ": no such directory");
        project = fs::canonical(project, ec);
    }
    // Validate before building anything.
    Target t = resolve_target(o.store_root, o.target, o.build_args, o.build, o.runtime);
    recipe::ShellConfig shell_config;
    if (t.recipe) shell_config = t.recipe->shell;
    for (const auto& [name, path] : shell_config.volumes) {
        check_volume_name(name);
        if (!clean_absolute(path))
            throw usage_error("volume " + name + ": " + path + ": expected an absolute path");
    }
    std::optional<oci::Layout> store;
    Image image = load_image(o.store_root, t.digest, t.display, store);
    t.digest = image.digest; // what a name or a digest prefix resolved to

    if (project.empty()) {
        if (t.recipe) {
            fs::path dir = t.recipe->file.parent_path();
            auto top = git_toplevel(dir);
            project = top.empty() ? dir : fs::path(top);
        } else {
            project = fs::current_path(ec);
        }
        project = fs::weakly_canonical(project, ec);
    }
    if (project == "/") throw usage_error("the project directory can't be / (use --project DIR)");
    fs::path cwd = fs::weakly_canonical(fs::current_path(ec), ec);
    if (!inside(project, cwd)) cwd = project;

    runtime::RunSpec spec;
    spec.terminal = ::isatty(0) == 1;
    spec.network = true;
    spec.no_new_privileges = false; // sudo and friends work in a dev shell
    spec.hostname = !shell_config.hostname.empty() ? shell_config.hostname
                    : t.name.empty()               ? "factory"
                                                   : hostname_for(t.name);
    // Rootless, factory is root in its user namespace and the caller's ids map to themselves
    // there (runtime/rootless.hpp): the shell runs as the caller, whatever SUDO_* say.
    auto caller = runtime::rootless_caller();
    std::uint32_t uid = o.root ? 0 : caller ? caller->uid : env_id("SUDO_UID", ::getuid());
    std::uint32_t gid = o.root ? 0 : caller ? caller->gid : env_id("SUDO_GID", ::getgid());
    spec.uid = uid;
    spec.gid = gid;
    std::string host_name = host_user_name(uid);
    std::string home = uid == 0 ? "/root" : "/home/" + host_name;

    bool host_home =
        o.home.empty() ? shell_config.home == recipe::ShellConfig::Home::host : o.home == "host";
    if (host_home) {
        const char* h = std::getenv("HOME");
        if (!h || h[0] != '/' || !fs::is_directory(h, ec))
            throw usage_error("--home host: $HOME is not set to a directory");
        home = fs::weakly_canonical(h, ec).string();
        if (home != "/") add_bind(spec, home, home);
    } else {
        std::string key = t.recipe ? t.recipe->file.string() : (t.name.empty() ? t.digest : t.name);
        fs::path dir = o.store_root / "homes" / Sha256::hex(key).substr(0, 16);
        fs::create_directories(dir, ec);
        if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
        if (::chown(dir.c_str(), uid, gid) != 0 && ::geteuid() == 0)
            throw Error("cannot chown " + dir.string() + ": " + std::strerror(errno));
        ::chmod(dir.c_str(), 0755);
        add_bind(spec, dir.string(), home);
    }
    for (const auto& [name, path] : shell_config.volumes) {
        fs::path dir = o.store_root / "volumes" / name;
        if (!fs::exists(dir, ec)) {
            fs::create_directories(dir, ec);
            if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
            (void)::chown(dir.c_str(), uid, gid);
        }
        add_bind(spec, dir.string(), path);
    }
    add_bind(spec, project.string(), project.string());

    spec.env = image.config.env();
    auto host_env = passthrough_env(shell_config.env_passthrough, environ);
    for (const auto& e : host_env)
        set_env(spec.env, e);
    if (const char* tz = std::getenv("TZ"); !tz) {
        if (auto zone = read_file("/etc/timezone", 256)) {
            std::string z = *zone;
            while (!z.empty() && (z.back() == '\n' || z.back() == ' '))
                z.pop_back();
            if (!z.empty()) set_env(spec.env, "TZ", z);
        }
    }
    // The sockets and files the passed-through variables point at, each at its own path: the
    // SSH agent, the X server (and its cookie), the Wayland compositor.
    auto bind_same = [&](const std::string& path, bool want_socket) {
        struct stat st {};
        if (!clean_absolute(path) || ::stat(path.c_str(), &st) != 0) return false;
        if (want_socket ? !S_ISSOCK(st.st_mode) : !S_ISREG(st.st_mode)) return false;
        add_bind(spec, path, path);
        return true;
    };
    if (const char* sock = std::getenv("SSH_AUTH_SOCK"); sock) bind_same(sock, true);
    if (const char* display = std::getenv("DISPLAY"); display && *display) {
        if (fs::is_directory("/tmp/.X11-unix", ec))
            add_bind(spec, "/tmp/.X11-unix", "/tmp/.X11-unix", true);
        if (const char* xauth = std::getenv("XAUTHORITY"); xauth && bind_same(xauth, false))
            set_env(spec.env, "XAUTHORITY", xauth);
    }
    if (const char* wl = std::getenv("WAYLAND_DISPLAY"); wl && *wl) {
        const char* runtime_dir = std::getenv("XDG_RUNTIME_DIR");
        std::string path = wl[0] == '/' ? std::string(wl)
                           : runtime_dir && runtime_dir[0] == '/'
                               ? (fs::path(runtime_dir) / wl).string()
                               : std::string();
        if (!path.empty() && bind_same(path, true) && wl[0] != '/')
            set_env(spec.env, "XDG_RUNTIME_DIR", runtime_dir);
    }
    spec.cwd = cwd.string();
    // Placeholders: the paths must be known before the root is assembled (stubs).
    spec.files.emplace_back("/etc/passwd", "");
    spec.files.emplace_back("/etc/group", "");

    // The environment: everything its container fixes when it starts (the image, the mounts,
    // the names in passwd/group, the hostname). A shell with the same joins it.
    EnvIdentity who;
    who.key = "factory-env-1\n" + t.digest + "\n" + std::to_string(uid) + ":" +
              std::to_string(gid) + "\n" + spec.hostname + "\n";
    for (const auto& m : spec.mounts)
        who.key += m.destination + "=" + m.source + "\n";
    who.hostname = spec.hostname;
    who.image = t.display;
    who.digest = t.digest;
    who.target = t.recipe ? t.recipe->file.string() : t.name.empty() ? t.digest : t.name;
    who.project = project.string();
    who.uid = uid;

    std::vector<std::string> args = o.args;
    return run_in_environment(
        o.store_root, *store, image, who, o.runtime, std::move(spec),
        [&](runtime::RunSpec& s) {
            std::string name;
            auto passwd = passwd_with(read_in_root(s.rootfs, "etc", "passwd").value_or(""), uid,
                                      gid, host_name, home, &name);
            auto group = group_with(read_in_root(s.rootfs, "etc", "group").value_or(""), gid,
                                    uid == 0 ? "root" : host_name);
            s.files[s.files.size() - 2].second = passwd;
            s.files[s.files.size() - 1].second = group;
            set_env(s.env, "HOME", home);
            set_env(s.env, "USER", name);
            set_env(s.env, "LOGNAME", name);
            std::string default_shell =
                exists_in_root(s.rootfs, "bin", "bash") ? "/bin/bash" : "/bin/sh";
            set_env(s.env, "SHELL", default_shell);
            if (!args.empty()) {
                s.args = args;
            } else {
                std::vector<std::string> image_cmd = image.config.entrypoint();
                for (const auto& a : image.config.cmd())
                    image_cmd.push_back(a);
                s.args = is_shell_program(image_cmd) ? image_cmd
                                                     : std::vector<std::string>{default_shell};
            }
        },
        [&](bool joined, const EnvRecord& env) {
            if (joined)
                std::fprintf(stderr, "factory: joined the environment %s (%s)\n", env.name.c_str(),
                             env.image.c_str());
            else
                std::fprintf(stderr,
                             "factory: shell in %s, environment %s (changes outside HOME, "
                             "volumes and the project are discarded when its last shell "
                             "exits)\n",
                             env.image.c_str(), env.name.c_str());
            std::fflush(stderr);
        });
}

// ---- factory ps, factory shell --stop -----------------------------------------------------

std::vector<EnvRecord> list_environments(const fs::path& store_root) {
    return Environments(store_root).list();
}

int stop_environments(const fs::path& store_root, const std::string& what) {
    if (what.empty())
        throw usage_error("--stop: name an environment (see factory ps), a recipe or an image");
    std::error_code ec;
    std::string recipe_path =
        is_recipe(what) ? fs::absolute(what, ec).lexically_normal().string() : "";
    Environments envs(store_root);
    int stopped = 0;
    for (const auto& env : envs.list()) {
        bool match = env.name == what || env.id == what || env.image == what ||
                     env.target == what || env.target == strip_tag(what) ||
                     (!recipe_path.empty() && env.target == recipe_path);
        if (!match) continue;
        auto lock = envs.lock(env.id);
        envs.end(env.id, envs.read(env.id));
        std::fprintf(stderr, "factory: stopped %s (%d shell%s)\n", env.name.c_str(), env.shells,
                     env.shells == 1 ? "" : "s");
        ++stopped;
    }
    if (stopped == 0)
        throw Error("no running environment matches '" + what + "' (factory ps lists them)");
    return 0;
}

} // namespace factory::shell
