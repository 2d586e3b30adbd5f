#include "factory/shell/environment.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "factory/runtime/process.hpp"
#include "factory/runtime/rootless.hpp"
#include "factory/util/error.hpp"
#include "factory/util/files.hpp"

namespace factory::shell {

namespace {

using Json = nlohmann::json;

bool is_id(const std::string& s) {
    return s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// True when path is a mount point (its device differs from its parent's).
bool mount_point(const fs::path& path) {
    struct stat a {
    }, b{};
    if (::lstat(path.c_str(), &a) != 0 || ::lstat(path.parent_path().c_str(), &b) != 0)
        return false;
    return a.st_dev != b.st_dev;
}

} // namespace

runtime::RuntimeChoice EnvRecord::runtime_choice() const {
    runtime::RuntimeChoice c;
    c.kind = runtime == "crun" ? runtime::RuntimeKind::crun : runtime::RuntimeKind::runc;
    c.binary = runtime_binary;
    c.version = runtime_version;
    c.state_root = state_root;
    c.hide_mounts = hide_mounts;
    c.why = "the environment's";
    c.user_namespace = runtime::in_user_namespace();
    return c;
}

std::string to_json(const EnvRecord& r) {
    Json j;
    j["id"] = r.id;
    j["name"] = r.name;
    j["image"] = r.image;
    j["digest"] = r.digest;
    j["target"] = r.target;
    j["project"] = r.project;
    j["uid"] = r.uid;
    j["container"] = r.container;
    j["runtime"] = r.runtime;
    j["runtime_binary"] = r.runtime_binary;
    j["runtime_version"] = r.runtime_version;
    j["state_root"] = r.state_root;
    j["hide_mounts"] = r.hide_mounts;
    j["lowers"] = r.lowers;
    j["init_pid"] = r.init_pid;
    j["init_start"] = r.init_start;
    j["created"] = r.created;
    return j.dump(1) + "\n";
}

std::optional<EnvRecord> record_from_json(const std::string& text) {
    auto j = Json::parse(text, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    try {
        EnvRecord r;
        r.id = j.at("id").get<std::string>();
        r.name = j.at("name").get<std::string>();
        r.image = j.at("image").get<std::string>();
        r.digest = j.at("digest").get<std::string>();
        r.target = j.at("target").get<std::string>();
        r.project = j.at("project").get<std::string>();
        r.uid = j.at("uid").get<std::uint32_t>();
        r.container = j.at("container").get<std::string>();
        r.runtime = j.at("runtime").get<std::string>();
        r.runtime_binary = j.at("runtime_binary").get<std::string>();
        r.runtime_version = j.at("runtime_version").get<std::string>();
        r.state_root = j.at("state_root").get<std::string>();
        r.hide_mounts = j.at("hide_mounts").get<std::vector<std::string>>();
        r.lowers = j.at("lowers").get<std::vector<std::string>>();
        r.init_pid = j.at("init_pid").get<pid_t>();
        r.init_start = j.at("init_start").get<std::uint64_t>();
        r.created = j.at("created").get<std::int64_t>();
        if (!is_id(r.id) || r.container != "factory-env-" + r.id ||
            (r.runtime != "crun" && r.runtime != "runc") || r.init_pid <= 0)
            return std::nullopt;
        return r;
    } catch (const Json::exception&) {
        return std::nullopt;
    }
}

Environments::Environments(fs::path store_root) : root_(std::move(store_root) / "envs") {}

cache::FileLock Environments::lock(const std::string& id) const {
    return cache::FileLock::exclusive(root_ / (id + ".lock"));
}

std::optional<EnvRecord> Environments::read(const std::string& id) const {
    auto text = read_file(dir(id) / "env.json", 1 << 20);
    if (!text) return std::nullopt;
    auto r = record_from_json(*text);
    if (!r || r->id != id) return std::nullopt;
    return r;
}

void Environments::write(const EnvRecord& record) const {
    write_file_atomic(dir(record.id) / "env.json", to_json(record));
}

bool Environments::running(const EnvRecord& r) {
    return r.init_pid > 0 && r.init_start != 0 &&
           runtime::process_start_time(r.init_pid) == r.init_start;
}

cache::FileLock Environments::add_session(const std::string& id) const {
    return cache::FileLock::exclusive(dir(id) / "sessions" / std::to_string(::getpid()));
}

int Environments::live_sessions(const std::string& id) const {
    int live = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir(id) / "sessions", ec), last; !ec && it != last;
         it.increment(ec)) {
        auto stale = cache::FileLock::try_exclusive(it->path());
        if (!stale) {
            ++live;
            continue;
        }
        std::error_code rm;
        fs::remove(it->path(), rm);
    }
    return live;
}

void Environments::end(const std::string& id, const std::optional<EnvRecord>& record) const {
    if (record) runtime::remove_container(record->runtime_choice(), record->container);
    auto merged = this->merged(id);
    std::error_code ec;
    if (mount_point(merged)) {
        if (::umount2(merged.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL)
            throw Error("cannot unmount " + merged.string() + ": " + errno_string(errno));
        if (mount_point(merged))
            throw Error("cannot end the environment " + id + ": " + merged.string() +
                        " is still mounted");
    }
    fs::remove_all(dir(id), ec);
    if (ec) throw Error("cannot remove " + dir(id).string() + ": " + ec.message());
}

std::vector<EnvRecord> Environments::list() const {
    std::vector<EnvRecord> out;
    std::error_code ec;
    for (fs::directory_iterator it(root_, ec), last; !ec && it != last; it.increment(ec)) {
        auto id = it->path().filename().string();
        if (!is_id(id) || !it->is_directory(ec)) continue;
        auto busy = cache::FileLock::try_exclusive(root_ / (id + ".lock"));
        auto record = read(id);
        if (!busy) { // someone is starting, joining or ending it: show what is recorded
            if (record) out.push_back(*record);
            continue;
        }
        int shells = live_sessions(id);
        if (!record || shells == 0 || !running(*record)) {
            end(id, record);
            continue;
        }
        record->shells = shells;
        out.push_back(*record);
    }
    std::sort(out.begin(), out.end(),
              [](const EnvRecord& a, const EnvRecord& b) { return a.name < b.name; });
    return out;
}

} // namespace factory::shell
