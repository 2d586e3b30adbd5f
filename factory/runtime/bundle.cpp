#include "factory/runtime/bundle.hpp"

#include <sys/ioctl.h>
#include <sys/resource.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "factory/runtime/in_root.hpp"
#include "factory/util/files.hpp"
#include "factory/util/pattern.hpp"

namespace factory::runtime {

namespace {

using Json = nlohmann::ordered_json;

constexpr const char* default_path =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Docker's defaults (moby oci/defaults.go).
const char* const masked_paths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
const char* const readonly_paths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"};

// /etc/hosts for a container: localhost and its own name (Docker writes the same lines).
std::string hosts_file(const std::string& hostname) {
    return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" +
           hostname + "\n";
}

// The host's resolver configuration: with the host's network namespace shared, even a local
// stub resolver (127.0.0.53) is reachable.
std::string resolv_file() {
    auto r = read_file("/etc/resolv.conf", 1 << 16);
    return r ? *r : std::string("# factory: the host has no /etc/resolv.conf\n");
}

bool has_path_env(const std::vector<std::string>& env) {
    for (const auto& e : env)
        if (e.starts_with("PATH=")) return true;
    return false;
}

Json mount(const std::string& dest, const std::string& type, const std::string& source,
           std::vector<std::string> options) {
    Json m;
    m["destination"] = dest;
    m["type"] = type;
    m["source"] = source;
    m["options"] = std::move(options);
    return m;
}

std::string generated_name(std::size_t i) {
    return "file-" + std::to_string(i);
}

std::uint64_t nofile_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY) return 1048576;
    return std::min<std::uint64_t>(rl.rlim_max, 1048576);
}

bool clean_absolute(const std::string& p) {
    if (p.empty() || p[0] != '/') return false;
    for (auto c : split_path(p))
        if (c == "..") return false;
    return true;
}

} // namespace

const std::vector<std::string>& default_capabilities() {
    static const std::vector<std::string> caps = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE",
    };
    return caps;
}

Result<void> check_spec(const RunSpec& spec) {
    if (spec.args.empty()) return Unexpected("nothing to run: no arguments");
    if (spec.rootfs.empty()) return Unexpected("no root file system");
    if (!clean_absolute(spec.cwd))
        return Unexpected("working directory \"" + spec.cwd +
                          "\" is not an absolute path without '..'");
    for (const auto& m : spec.mounts)
        if (!clean_absolute(m.destination))
            return Unexpected("mount destination \"" + m.destination +
                              "\" is not an absolute path without '..'");
    for (const auto& [dest, content] : spec.files)
        if (!clean_absolute(dest))
            return Unexpected("file destination \"" + dest +
                              "\" is not an absolute path without '..'");
    for (const auto& e : spec.env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return Unexpected("environment entry \"" + e + "\" is not NAME=value");
    return {};
}

std::vector<MountTarget> mount_targets(const RunSpec& spec) {
    std::vector<MountTarget> t = {
        {"proc", true}, {"dev", true}, {"sys", true}, {"etc/hosts", false}};
    if (spec.network) t.push_back(MountTarget{"etc/resolv.conf", false});
    auto rel = [](const std::string& p) { return clean_relative(p.substr(1)); };
    for (const auto& m : spec.mounts) {
        std::error_code ec;
        bool dir = m.type != "bind" || fs::is_directory(m.source, ec);
        t.push_back(MountTarget{rel(m.destination), dir});
    }
    for (const auto& [dest, content] : spec.files)
        t.push_back(MountTarget{rel(dest), false});
    return t;
}

namespace {

Json process_json(const RunSpec& spec) {
    Json process;
    process["terminal"] = spec.terminal;
    // runtime-spec config.md consoleSize: the pty starts with the caller's window size instead
    // of 0x0 (crun never copies it; runc only after the process started).
    if (spec.terminal) {
        struct winsize ws {};
        if (::ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
            process["consoleSize"] = {{"height", ws.ws_row}, {"width", ws.ws_col}};
    }
    Json user;
    user["uid"] = spec.uid;
    user["gid"] = spec.gid;
    if (!spec.extra_gids.empty()) user["additionalGids"] = spec.extra_gids;
    process["user"] = std::move(user);
    process["args"] = spec.args;
    auto env = spec.env;
    if (!has_path_env(env)) env.insert(env.begin(), default_path);
    process["env"] = std::move(env);
    process["cwd"] = spec.cwd;
    // A non-root user gets the capabilities in its bounding set only (Docker ≥ 20.10), and
    // never inheritable ones (CVE-2022-24769).
    const auto& caps = default_capabilities();
    Json c;
    c["bounding"] = caps;
    c["effective"] = spec.uid == 0 ? Json(caps) : Json::array();
    c["permitted"] = spec.uid == 0 ? Json(caps) : Json::array();
    c["inheritable"] = Json::array();
    c["ambient"] = Json::array();
    process["capabilities"] = std::move(c);
    auto nofile = nofile_limit();
    process["rlimits"] =
        Json::array({Json{{"type", "RLIMIT_NOFILE"}, {"hard", nofile}, {"soft", nofile}}});
    process["noNewPrivileges"] = spec.no_new_privileges;

    return process;
}

} // namespace

std::string make_process(const RunSpec& spec) {
    return process_json(spec).dump(1);
}

std::string make_config(const RunSpec& spec, const fs::path& bundle_dir,
                        const BundleOptions& options) {
    Json process = process_json(spec);
    Json mounts = Json::array();
    mounts.push_back(mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
    mounts.push_back(
        mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
    mounts.push_back(
        mount("/dev/pts", "devpts", "devpts",
              {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
    mounts.push_back(mount("/dev/shm", "tmpfs", "shm",
                           {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
    mounts.push_back(mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
    if (options.user_namespace && spec.network)
        mounts.push_back(
            mount("/sys", "none", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro"}));
    else
        mounts.push_back(mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
    if (!options.user_namespace)
        mounts.push_back(mount("/sys/fs/cgroup", "cgroup", "cgroup",
                               {"nosuid", "noexec", "nodev", "relatime", "ro"}));
    std::vector<std::string> ro_file = {"rbind", "ro", "nosuid", "nodev", "noexec"};
    mounts.push_back(mount("/etc/hosts", "bind", (bundle_dir / "hosts").string(), ro_file));
    if (spec.network)
        mounts.push_back(
            mount("/etc/resolv.conf", "bind", (bundle_dir / "resolv.conf").string(), ro_file));
    for (const auto& m : spec.mounts)
        mounts.push_back(mount(m.destination, m.type, m.source, m.options));
    for (std::size_t i = 0; i < spec.files.size(); ++i)
        mounts.push_back(mount(spec.files[i].first, "bind",
                               (bundle_dir / generated_name(i)).string(),
                               {"rbind", "ro", "nosuid", "nodev"}));

    Json namespaces = Json::array();
    for (const char* ns : {"pid", "ipc", "uts", "mount"})
        namespaces.push_back(Json{{"type", ns}});
    if (!spec.network) namespaces.push_back(Json{{"type", "network"}});
    Json linux;
    linux["namespaces"] = std::move(namespaces);
    linux["maskedPaths"] = masked_paths;
    linux["readonlyPaths"] = readonly_paths;

    Json config;
    config["ociVersion"] = "1.0.2";
    config["process"] = std::move(process);
    config["root"] = Json{{"path", fs::absolute(spec.rootfs).string()}, {"readonly", false}};
    config["hostname"] = spec.hostname;
    config["mounts"] = std::move(mounts);
    config["linux"] = std::move(linux);
    return config.dump(1);
}

Result<void> write_bundle(const RunSpec& spec, const fs::path& bundle_dir,
                          const BundleOptions& options) {
    auto write = [&](const std::string& name, const std::string& content) -> Result<void> {
        auto path = bundle_dir / name;
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << content;
        out.close();
        if (!out) return Unexpected("cannot write " + path.string());
        return {};
    };
    if (auto r = check_spec(spec); !r) return r;
    if (auto r = write("hosts", hosts_file(spec.hostname)); !r) return r;
    if (spec.network)
        if (auto r = write("resolv.conf", resolv_file()); !r) return r;
    for (std::size_t i = 0; i < spec.files.size(); ++i)
        if (auto r = write(generated_name(i), spec.files[i].second); !r) return r;
    return write("config.json", make_config(spec, bundle_dir, options));
}

} // namespace factory::runtime
