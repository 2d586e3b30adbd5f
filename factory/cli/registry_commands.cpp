#include "factory/cli/registry_commands.hpp"

#include <CLI/CLI.hpp>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cache/gc.hpp"
#include "cache/lock.hpp"
#include "cache/root.hpp"
#include "factory/oci/layout.hpp"
#include "factory/recipe/parser.hpp"
#include "factory/registry/base.hpp"
#include "factory/registry/credentials.hpp"
#include "factory/registry/pull.hpp"
#include "factory/registry/push.hpp"
#include "factory/registry/reference.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::cli {

namespace fs = std::filesystem;

namespace {

oci::Layout open_or_create_store(const fs::path& root) {
    std::error_code ec;
    fs::create_directories(root / "tmp", ec);
    if (ec) throw Error("cannot create the store at " + root.string() + ": " + ec.message());
    return oci::Layout::create(root, {.tmp_dir = root / "tmp"});
}

registry::Reference parse_ref_or_throw(const std::string& text) {
    auto ref = registry::parse_reference(text);
    if (!ref) throw usage_error(ref.error());
    return *ref;
}

} // namespace

const char* const every_registry =
    "every registry of this command: bases, --cache-from and --cache-to caches, docker:// outputs";

registry::ClientOptions registry_client_options(const RegistryFlags& f, Progress* progress,
                                                const std::string& host) {
    registry::ClientOptions o;
    if (!f.tls_verify.empty() && f.tls_verify != "true" && f.tls_verify != "false")
        throw usage_error("--tls-verify " + f.tls_verify + ": expected true or false");
    o.tls.verify = f.tls_verify != "false";
    o.tls_verify_given = !f.tls_verify.empty();
    o.tls.ca_file = f.tls_ca;
    if (!f.tls_ca.empty() && !fs::exists(f.tls_ca))
        throw usage_error("--tls-ca " + f.tls_ca + ": no such file");
    o.registries = std::make_shared<registry::RegistriesConfig>(registry::load_registries_config());
    if (f.retries < 0 || f.retries > 100) throw usage_error("--retries: expected 0 to 100");
    if (f.retry_time < 0) throw usage_error("--retry-time: expected seconds >= 0");
    if (f.timeout <= 0) throw usage_error("--timeout: expected seconds > 0");
    o.retry.max_attempts = f.retries + 1;
    o.retry.max_total = registry::Seconds(f.retry_time);
    o.stall_timeout = registry::Seconds(f.timeout);
    o.progress = progress;
    if (!o.tls.verify) registry::warn_insecure(host, "--tls-verify=false");
    return o;
}

void add_pull_flag(CLI::App& build, RegistryFlags& flags) {
    build.add_option("--pull", flags.pull,
                     "When to ask the registry for a base given by reference: never, missing "
                     "(default: resolve a tag, fetch what is absent) or always");
}

void apply_registry_flags(builder::BuildOptions& options, const RegistryFlags& flags) {
    options.registry.policy = registry::parse_pull_policy(flags.pull);
    options.registry.client = registry_client_options(flags, nullptr, every_registry);
}

namespace {

ProgressMode progress_mode(const RegistryFlags& f) {
    auto mode = parse_progress_mode(f.progress);
    if (!mode)
        throw usage_error("--progress " + f.progress + ": expected auto, tty, plain or json");
    return *mode;
}

std::optional<oci::Platform> parse_platform(const std::string& text) {
    if (text.empty()) return std::nullopt;
    oci::Platform p;
    auto first = text.find('/');
    if (first == std::string::npos)
        throw usage_error("--platform " + text + ": expected OS/ARCH[/VARIANT]");
    p.os = text.substr(0, first);
    auto rest = text.substr(first + 1);
    auto second = rest.find('/');
    p.architecture = rest.substr(0, second);
    if (second != std::string::npos) p.variant = rest.substr(second + 1);
    if (p.os.empty() || p.architecture.empty())
        throw usage_error("--platform " + text + ": expected OS/ARCH[/VARIANT]");
    return p;
}

int run_pull(const std::string& text, const fs::path& root, const RegistryFlags& flags,
             const std::string& platform) {
    auto ref = parse_ref_or_throw(text);
    Progress progress(progress_mode(flags));
    registry::Client client(ref.api_host(), registry_client_options(flags, &progress, ref.host));
    auto store = open_or_create_store(root);
    auto lock = cache::StoreLock::build(root);
    registry::PullOptions options;
    if (auto p = parse_platform(platform)) options.platform = *p;
    options.jobs = transfer_jobs(flags);
    options.progress = &progress;
    auto pulled = registry::pull(client, ref, store, options);
    std::printf("%s %s\n", ref.str().c_str(), pulled.manifest_desc.digest.c_str());
    return 0;
}

// Reads a password: from stdin (--password-stdin), else from the terminal without echo.
std::string read_password(bool from_stdin) {
    std::string line;
    if (from_stdin || !::isatty(STDIN_FILENO)) {
        std::getline(std::cin, line);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
    }
    std::fprintf(stderr, "Password: ");
    termios old{};
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, line);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
    return line;
}

std::string login_host(const std::string& text) {
    std::string host = text;
    if (host.starts_with("docker://")) host = host.substr(9);
    if (auto p = host.find("://"); p != std::string::npos) host = host.substr(p + 3);
    while (host.ends_with('/'))
        host.pop_back();
    if (host.empty() || host.find('/') != std::string::npos)
        throw usage_error(
            "login: expected a registry host such as registry.example.com:5000, got '" + text +
            "'");
    return registry::normalize_auth_key(host);
}

int run_login(const std::string& text, std::string username, std::string password,
              bool password_stdin, const RegistryFlags& flags) {
    auto host = login_host(text);
    if (username.empty()) throw usage_error("login: --username is required");
    if (password.empty()) password = read_password(password_stdin);
    if (password.empty()) throw usage_error("login: empty password");
    registry::Credentials creds{username, password, "", "factory login"};
    Progress progress(progress_mode(flags));
    auto options = registry_client_options(flags, &progress, host);
    options.credentials = creds;
    registry::Reference probe;
    probe.host = host;
    registry::Client client(probe.api_host(), options);
    client.check_login("");
    registry::save_login(host, creds);
    std::printf("Login succeeded: %s (saved in %s)\n", host.c_str(),
                registry::factory_auth_file().c_str());
    return 0;
}

int run_logout(const std::string& text) {
    auto host = login_host(text);
    if (!registry::remove_login(host))
        throw Error("logout: not logged in to " + host + " (" +
                    registry::factory_auth_file().string() + ")");
    std::printf("Removed login credentials for %s\n", host.c_str());
    return 0;
}

} // namespace

void add_registry_flags(CLI::App& cmd, RegistryFlags& flags, JobsFlag jobs) {
    cmd.add_option("--tls-verify", flags.tls_verify,
                   "true (default, unless registries.toml says insecure) or false: no certificate "
                   "check, plain HTTP allowed");
    cmd.add_option("--tls-ca", flags.tls_ca, "CA bundle (PEM) to verify the registry with");
    cmd.add_option("--retries", flags.retries,
                   "Retries of a failed request (connection errors, 408, 429, 5xx; default 4)");
    cmd.add_option("--retry-time", flags.retry_time,
                   "Seconds after which no retry starts (default 120)");
    cmd.add_option("--timeout", flags.timeout,
                   "Seconds a transfer may stall before the attempt fails (default 30)");
    if (jobs == JobsFlag::yes)
        cmd.add_option("--jobs", flags.jobs, "Blobs transferred at once (default 4)");
    // Only the commands that push.
    if (const auto& name = cmd.get_name(); name == "build" || name == "export" || name == "push")
        cmd.add_option("--chunk-size", flags.chunk_size,
                       "Push blobs larger than SIZE in resumable chunks of SIZE (default 128MiB)");
}

std::size_t transfer_jobs(const RegistryFlags& flags) {
    if (flags.jobs < 1)
        throw usage_error("--jobs " + std::to_string(flags.jobs) +
                          ": blobs transferred at once, at least 1");
    return static_cast<std::size_t>(flags.jobs);
}

std::uint64_t chunk_size(const RegistryFlags& flags) {
    if (flags.chunk_size.empty()) return registry::default_chunk_size;
    auto size = cache::parse_size(flags.chunk_size);
    if (!size) throw usage_error("--chunk-size " + flags.chunk_size + ": " + size.error());
    if (*size < registry::min_chunk_size)
        throw usage_error("--chunk-size " + flags.chunk_size + ": at least 64KiB");
    return *size;
}

RegistryCommands::RegistryCommands(CLI::App& app, std::string& cache_dir) {
    pull_ = app.add_subcommand("pull", "Pull an image from a registry into the store");
    pull_->add_option("--cache", cache_dir, "Store directory");
    pull_->add_option("ref", pull_ref_, "[docker://]HOST/REPO[:TAG][@sha256:DIGEST]")->required();
    pull_->add_option("--platform", platform_, "OS/ARCH[/VARIANT] to pick from an index");
    pull_->add_option("--progress", flags_.progress, "auto|tty|plain|json");
    add_registry_flags(*pull_, flags_);

    push_ = app.add_subcommand("push", "Push an image of the store to a registry");
    push_->add_option("--cache", cache_dir, "Store directory");
    push_->add_option("source", push_src_, "NAME[:TAG] or sha256:DIGEST in the store")->required();
    push_->add_option("dest", push_dest_, "[docker://]HOST/REPO[:TAG]")->required();
    push_->add_option("--tag", push_tags_, "Also tag the pushed image TAG (repeatable)");
    push_->add_flag("--all-tags", all_tags_,
                    "Push every tag of SOURCE (a name without a tag) to DEST:TAG (a repository)");
    push_->add_option("--mount-from", mount_from_,
                      "Mount blobs from this repository of the same registry instead of uploading");
    push_->add_option("--progress", flags_.progress, "auto|tty|plain|json");
    add_registry_flags(*push_, flags_);

    login_ = app.add_subcommand("login", "Save credentials for a registry (checked first)");
    login_->add_option("host", login_host_, "HOST[:PORT]")->required();
    login_->add_option("-u,--username", username_, "User name");
    login_->add_option("-p,--password", password_, "Password (prefer --password-stdin)");
    login_->add_flag("--password-stdin", password_stdin_, "Read the password from stdin");
    add_registry_flags(*login_, flags_);

    logout_ = app.add_subcommand("logout", "Remove the credentials `factory login` saved");
    logout_->add_option("host", login_host_, "HOST[:PORT]")->required();
}

std::optional<int> RegistryCommands::dispatch(const std::string& cache_dir) {
    if (pull_->parsed() || push_->parsed())
        transfer_jobs(flags_); // a bad --jobs is a usage error before the store is read
    // A signal stops the transfers, and the temp files of blobs on their way in are removed.
    std::optional<InterruptGuard> interrupts;
    if (pull_->parsed() || push_->parsed()) interrupts.emplace();
    if (pull_->parsed())
        return run_pull(pull_ref_, cache::store_root(cache_dir), flags_, platform_);
    if (push_->parsed()) {
        auto root = cache::store_root(cache_dir);
        if (all_tags_) {
            if (!push_tags_.empty())
                throw usage_error("push: --all-tags and --tag exclude each other");
            push_all_tags(push_src_, push_dest_, root, flags_, mount_from_);
            return 0;
        }
        parse_ref_or_throw(push_dest_);
        push_outputs({push_dest_}, push_src_, root, flags_, push_tags_, mount_from_);
        return 0;
    }
    if (login_->parsed())
        return run_login(login_host_, username_, password_, password_stdin_, flags_);
    if (logout_->parsed()) return run_logout(login_host_);
    return std::nullopt;
}

std::vector<std::string> take_registry_outputs(std::vector<std::string>& outputs) {
    std::vector<std::string> taken, kept;
    for (auto& o : outputs) {
        if (o.starts_with("docker://")) {
            parse_ref_or_throw(o);
            taken.push_back(o);
        } else {
            kept.push_back(o);
        }
    }
    outputs = std::move(kept);
    return taken;
}

namespace {

oci::Layout open_store_for_push(const fs::path& root) {
    if (!fs::exists(root / "oci-layout"))
        throw Error("no store at " + root.string() + " (build something first, or pass --cache)");
    return oci::Layout::open(root, {.tmp_dir = root / "tmp"});
}

// Pushes image to dest (also tagged extra_tags); prints "docker://DEST:TAG DIGEST" per tag.
void push_image(const oci::Layout& store, const oci::Descriptor& image,
                const registry::Reference& dest, const RegistryFlags& flags, Progress& progress,
                const std::vector<std::string>& extra_tags, const std::string& mount_from) {
    registry::Client client(dest.api_host(), registry_client_options(flags, &progress, dest.host));
    registry::PushOptions options;
    options.jobs = transfer_jobs(flags);
    options.progress = &progress;
    options.extra_tags = extra_tags;
    options.mount_from = mount_from;
    options.chunk_size = chunk_size(flags);
    auto result = registry::push(client, store, image, dest, options);
    progress.event("push", dest.str() + ": " + std::to_string(result.blobs_uploaded) +
                               " uploaded (" + human_size(result.bytes_uploaded) + "), " +
                               std::to_string(result.blobs_mounted) + " mounted, " +
                               std::to_string(result.blobs_present) + " already there" +
                               (result.manifest_present ? ", manifest unchanged" : ""));
    std::printf("%s %s\n", ("docker://" + dest.str()).c_str(), result.digest.c_str());
}

// The part of a reference after its last '/' has a ':' or '@' (a tag or a digest).
bool names_a_tag(const std::string& text) {
    auto last = text.substr(text.rfind('/') == std::string::npos ? 0 : text.rfind('/') + 1);
    return last.find_first_of(":@") != std::string::npos;
}

} // namespace

void push_outputs(const std::vector<std::string>& destinations, const std::string& source,
                  const fs::path& root, const RegistryFlags& flags,
                  const std::vector<std::string>& extra_tags, const std::string& mount_from) {
    if (destinations.empty()) return;
    auto store = open_store_for_push(root);
    auto lock = cache::StoreLock::build(root);
    auto image = store.resolve(source);
    if (!image) throw usage_error("no image '" + source + "' in the store " + root.string());
    Progress progress(progress_mode(flags));
    for (const auto& text : destinations)
        push_image(store, *image, parse_ref_or_throw(text), flags, progress, extra_tags,
                   mount_from);
    std::fflush(stdout);
}

RecipePush recipe_push(const std::string& name, const std::vector<std::string>& tags) {
    if (!registry::looks_like_reference(name))
        throw usage_error("--push: the recipe's image name '" + name +
                          "' names no registry (its first component must be a host, as in "
                          "registry.example.com/team/app or localhost:5000/app); use -o "
                          "docker://HOST/REPO:TAG instead");
    RecipePush p;
    p.destination = "docker://" + name + ":" + (tags.empty() ? "latest" : tags.front());
    if (!tags.empty()) p.extra_tags.assign(tags.begin() + 1, tags.end());
    parse_ref_or_throw(p.destination);
    return p;
}

void check_recipe_push(const std::vector<std::string>& recipes,
                       const std::map<std::string, std::string>& args) {
    for (const auto& r : recipes) {
        recipe::LoadOptions options;
        options.args = args;
        auto recipe = recipe::load(r, options);
        recipe_push(recipe.name, recipe.tags);
    }
}

void push_all_tags(const std::string& name, const std::string& dest_text, const fs::path& root,
                   const RegistryFlags& flags, const std::string& mount_from) {
    if (names_a_tag(name))
        throw usage_error("push --all-tags: give the source as a name without a tag, got '" + name +
                          "'");
    if (names_a_tag(dest_text))
        throw usage_error(
            "push --all-tags: give the destination as HOST/REPO without a tag, got '" + dest_text +
            "'");
    auto dest = parse_ref_or_throw(dest_text);
    auto store = open_store_for_push(root);
    auto lock = cache::StoreLock::build(root);
    // The tags of name, grouped by the image they name (in index order), so an image shared by
    // several tags is pushed once and tagged with each.
    std::vector<std::pair<oci::Descriptor, std::vector<std::string>>> images;
    for (const auto& [ref, desc] : store.refs()) {
        if (!ref.starts_with(name + ":") || ref.find(':', name.size() + 1) != std::string::npos)
            continue;
        auto tag = ref.substr(name.size() + 1);
        auto image = store.resolve(ref);
        if (!image) continue;
        auto it = std::find_if(images.begin(), images.end(),
                               [&](const auto& e) { return e.first.digest == image->digest; });
        if (it == images.end())
            images.push_back({*image, {tag}});
        else if (std::find(it->second.begin(), it->second.end(), tag) == it->second.end())
            it->second.push_back(tag);
    }
    if (images.empty())
        throw Error("push --all-tags: no tags of '" + name + "' in the store " + root.string(),
                    ExitCode::usage);
    Progress progress(progress_mode(flags));
    for (const auto& [image, tags] : images) {
        auto d = dest;
        d.tag = tags.front();
        d.digest.clear();
        std::vector<std::string> rest(tags.begin() + 1, tags.end());
        push_image(store, image, d, flags, progress, rest, mount_from);
        for (const auto& t : rest) { // tagged by the same push
            d.tag = t;
            std::printf("%s %s\n", ("docker://" + d.str()).c_str(), image.digest.c_str());
        }
    }
    std::fflush(stdout);
}

} // namespace factory::cli
