#include "factory/registry/credentials.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

extern char** environ;

namespace factory::registry {

namespace {

using Json = nlohmann::json;

std::string env_or(const char* name, std::string fallback = {}) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : fallback;
}

fs::path home() {
    return env_or("HOME", "/");
}

// Reads a JSON auth file; nullopt if it does not exist.
std::optional<Json> read_auth_file(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return std::nullopt;
    auto text = read_file(path, 4u << 20);
    if (!text) throw Error("credentials: " + text.error());
    auto j = Json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw Error("credentials: " + path.string() + ": not a JSON object");
    return j;
}

// The name helpers are asked for: Docker Hub's legacy URL, else the host.
std::string helper_server(std::string_view host) {
    return host == "docker.io" ? "https://index.docker.io/v1/" : std::string(host);
}

// Runs `docker-credential-NAME get` with server on stdin; nullopt when it doesn't know it.
std::optional<Credentials> run_helper(const std::string& name, std::string_view host);

// The "auth" (base64 user:password) or "username"/"password" fields of an auths entry.
std::optional<Credentials> from_entry(const Json& e, const fs::path& file) {
    if (!e.is_object()) return std::nullopt;
    Credentials c;
    c.source = file.string();
    if (auto it = e.find("identitytoken"); it != e.end() && it->is_string())
        c.identity_token = it->get<std::string>();
    if (auto it = e.find("auth");
        it != e.end() && it->is_string() && !it->get<std::string>().empty()) {
        auto decoded = base64_decode(it->get<std::string>());
        auto colon = decoded ? decoded->find(':') : std::string::npos;
        if (colon == std::string::npos)
            throw Error("credentials: " + file.string() +
                        ": an \"auth\" field is not base64 of user:password");
        c.username = decoded->substr(0, colon);
        c.password = decoded->substr(colon + 1);
    } else if (auto u = e.find("username"); u != e.end() && u->is_string()) {
        c.username = u->get<std::string>();
        if (auto p = e.find("password"); p != e.end() && p->is_string())
            c.password = p->get<std::string>();
    }
    if (c.username.empty() && c.identity_token.empty()) return std::nullopt;
    return c;
}

// The longest key of auths that names host/repository or one of its parents.
std::optional<Credentials> match_auths(const Json& auths, std::string_view host,
                                       std::string_view repository, const fs::path& file) {
    if (!auths.is_object()) return std::nullopt;
    std::string best_key;
    const Json* best = nullptr;
    std::string full = std::string(host) + "/" + std::string(repository);
    for (auto it = auths.begin(); it != auths.end(); ++it) {
        std::string key = normalize_auth_key(it.key());
        bool matches = key == host || key == full ||
                       (full.starts_with(key) && full.size() > key.size() &&
                        full[key.size()] == '/' && key.find('/') != key.npos);
        if (host == "docker.io" && key == "index.docker.io") matches = true;
        if (matches && key.size() >= best_key.size()) {
            best_key = key;
            best = &it.value();
        }
    }
    return best ? from_entry(*best, file) : std::nullopt;
}

std::optional<Credentials> from_file(const fs::path& path, bool docker_cfg, std::string_view host,
                                     std::string_view repository) {
    auto j = read_auth_file(path);
    if (!j) return std::nullopt;
    if (docker_cfg) return match_auths(*j, host, repository, path);
    if (auto h = j->find("credHelpers"); h != j->end() && h->is_object()) {
        for (auto it = h->begin(); it != h->end(); ++it)
            if (normalize_auth_key(it.key()) == host && it->is_string())
                return run_helper(it->get<std::string>(), host);
    }
    if (auto a = j->find("auths"); a != j->end())
        if (auto c = match_auths(*a, host, repository, path)) return c;
    if (auto s = j->find("credsStore");
        s != j->end() && s->is_string() && !s->get<std::string>().empty())
        return run_helper(s->get<std::string>(), host);
    return std::nullopt;
}

bool valid_helper_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
            return false;
    return true;
}

// Spawns argv with stdin = input, returns (exit status, stdout) (at most 64 KiB of it).
std::pair<int, std::string> spawn_capture(const std::string& program, std::string_view input) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
        throw Error("credentials: pipe: " + errno_string(errno));
    Fd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
    std::string arg1 = "get";
    char* argv[] = {const_cast<char*>(program.c_str()), arg1.data(), nullptr};
    pid_t pid = 0;
    int rc = ::posix_spawnp(&pid, program.c_str(), &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw Error("credentials: cannot run " + program + ": " + errno_string(rc));
    in_r = Fd();
    out_w = Fd();
    // The input is one short line: it fits in the pipe, so writing first can't deadlock. A
    // helper may exit without reading it: that is EPIPE for this write, never a SIGPIPE that
    // kills the process (SIGPIPE blocked in this thread for the write, and one it raised taken
    // before unblocking).
    std::string line = std::string(input) + "\n";
    sigset_t pipe_only, old_mask;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
    (void)write_all(in_w.get(), line.data(), line.size());
    const timespec no_wait{};
    while (::sigtimedwait(&pipe_only, nullptr, &no_wait) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    in_w = Fd();
    std::string output;
    char buf[4096];
    for (;;) {
        auto n = ::read(out_r.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (output.size() < (64u << 10)) output.append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return {status, output};
}

std::optional<Credentials> run_helper(const std::string& name, std::string_view host) {
    if (!valid_helper_name(name))
        throw Error("credentials: invalid credential helper name '" + name + "'");
    std::string program = "docker-credential-" + name;
    auto [status, output] = spawn_capture(program, helper_server(host));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        // The helper protocol's "not found" answer is a message on stdout and exit 1.
        if (output.find("credentials not found") != std::string::npos) return std::nullopt;
        throw Error("credentials: " + program + " get failed for " + std::string(host) +
                    (WIFEXITED(status) ? " (exit " + std::to_string(WEXITSTATUS(status)) + ")"
                                       : " (killed)"));
    }
    auto j = Json::parse(output, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("Username") || !j.contains("Secret") ||
        !j["Username"].is_string() || !j["Secret"].is_string())
        throw Error("credentials: " + program +
                    " get: the answer is not the helper protocol's "
                    "JSON ({\"Username\", \"Secret\"})");
    Credentials c;
    c.source = program;
    // docker-credential-helpers: the user name "<token>" marks an identity token.
    if (j["Username"] == "<token>")
        c.identity_token = j["Secret"].get<std::string>();
    else {
        c.username = j["Username"].get<std::string>();
        c.password = j["Secret"].get<std::string>();
    }
    return c;
}

} // namespace

std::string normalize_auth_key(std::string_view key) {
    std::string k(key);
    if (auto p = k.find("://"); p != std::string::npos) {
        k = k.substr(p + 3);
        k = k.substr(0, k.find('/')); // a URL key names a host only
    }
    while (k.ends_with('/'))
        k.pop_back();
    if (k == "index.docker.io" || k == "registry-1.docker.io") k = "docker.io";
    return k;
}

fs::path factory_auth_file() {
    auto config = env_or("XDG_CONFIG_HOME");
    fs::path dir = config.empty() ? home() / ".config" : fs::path(config);
    return dir / "factory" / "auth.json";
}

std::vector<fs::path> auth_files() {
    std::vector<fs::path> files;
    if (auto f = env_or("REGISTRY_AUTH_FILE"); !f.empty()) files.emplace_back(f);
    files.push_back(factory_auth_file());
    if (auto run = env_or("XDG_RUNTIME_DIR"); !run.empty())
        files.push_back(fs::path(run) / "containers" / "auth.json");
    files.push_back(home() / ".config" / "containers" / "auth.json");
    auto docker = env_or("DOCKER_CONFIG");
    files.push_back(docker.empty() ? home() / ".docker" / "config.json"
                                   : fs::path(docker) / "config.json");
    files.push_back(home() / ".dockercfg");
    return files;
}

std::optional<Credentials> find_credentials(std::string_view host, std::string_view repository) {
    for (const auto& f : auth_files()) {
        bool docker_cfg = f.filename() == ".dockercfg";
        if (auto c = from_file(f, docker_cfg, host, repository)) return c;
    }
    return std::nullopt;
}

void save_login(std::string_view host, const Credentials& creds) {
    auto path = factory_auth_file();
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec)
        throw Error("login: cannot create " + path.parent_path().string() + ": " + ec.message());
    Json j = read_auth_file(path).value_or(Json::object());
    j["auths"][normalize_auth_key(host)] = {
        {"auth", base64_encode(creds.username + ":" + creds.password)}};
    write_file_atomic(path, j.dump(1, '\t') + "\n", 0600);
}

bool remove_login(std::string_view host) {
    auto path = factory_auth_file();
    auto j = read_auth_file(path);
    if (!j || !j->contains("auths") || !(*j)["auths"].is_object()) return false;
    if ((*j)["auths"].erase(normalize_auth_key(host)) == 0) return false;
    write_file_atomic(path, j->dump(1, '\t') + "\n", 0600);
    return true;
}

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

Result<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0 || text.size() > (1u << 20))
        return Unexpected("base64: length is not a multiple of 4");
    std::string out(3 * text.size() / 4 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) return Unexpected("base64: invalid characters");
    std::size_t size = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the padding as zero bytes.
    if (text.ends_with("=="))
        size -= 2;
    else if (text.ends_with('='))
        size -= 1;
    out.resize(size);
    return out;
}

} // namespace factory::registry
