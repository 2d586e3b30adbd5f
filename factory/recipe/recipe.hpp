#pragma once
// The validated recipe model: what a recipe file says, with every string already
// ${ARG}-expanded and every value type-checked. Produced by recipe::load (parser.hpp);
// consumed by build/. Nothing here touches the file system beyond the recipe itself.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace factory::recipe {

// Where a value came from, for errors: "recipes/hello.toml:12:5".
struct Location {
    std::string file;
    int line = 0;
    int column = 0;
    std::string str() const; // "file:line:col" (or just "file" when line == 0)
};

enum class Compression { gzip, zstd };

// [base] debian = { … }: a root file system bootstrapped with mmdebstrap (sources/debian.hpp).
struct DebianBase {
    std::string suite;                // "bookworm", "stable": [a-z0-9][a-z0-9-]*
    std::string variant = "minbase";  // minbase|buildd|apt|essential|required|important|standard
    std::vector<std::string> include; // extra packages: Debian names, sorted, no repeats
    // http:// or https:// URL as written. Empty: unset in the recipe; sources/debian picks
    // the host's (resolve_mirror), so the recipe alone doesn't say which archive is used.
    std::string mirror;
    std::vector<std::string> components = {"main"}; // in recipe order, no repeats
    // Debian spelling ("amd64", "arm64", "armhf", "i386", "ppc64el" …). Never empty: when the
    // recipe doesn't set it, the image's platform translated (linux/arm/v7 → "armhf").
    std::string architecture;
};

struct Base {
    enum class Kind {
        scratch,     // "scratch"
        oci_layout,  // "oci:DIR[:TAG]"        path = DIR (absolute), tag (may be empty)
        oci_archive, // "oci-archive:FILE[:TAG]" path = FILE (absolute), tag
        stage,       // "stage:NAME" or { stage = "NAME" }: another stage's result
        debian,      // { debian = { suite = … } }: `debian` holds the rest
        registry,    // "HOST/REPO[:TAG][@sha256:…]" (docker:// optional): `reference`
    };
    Kind kind = Kind::scratch;
    std::filesystem::path path;
    std::string tag;
    std::string stage;
    std::string reference; // Kind::registry only, as written (without docker://)
    Location where;
    DebianBase debian; // Kind::debian only
};

// One source → destination of a copy step.
struct CopyItem {
    std::vector<std::string> src; // relative paths or globs (*, ?, [..], **) in the source tree
    std::string dest;             // absolute path in the image; a trailing '/' means a directory
    std::optional<unsigned> mode; // overrides the mode of every copied file (and directory)
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    std::string from_stage; // copy from another stage's rootfs instead of the context
    std::string context;    // a named context from [contexts]; empty = the recipe's context
    Location where;
};

// cache = ["/var/cache/apt", { target = "/root/.npm", id = "npm", sharing = "locked" }]: a
// directory kept in the store across builds and mounted at `target` for the run; its content
// never enters a layer or a cache key.
struct CacheMount {
    enum class Sharing {
        locked, // one run at a time holds the mount; others wait (BuildKit's sharing=locked)
    };
    // Written: [A-Za-z0-9][A-Za-z0-9._-]{0,63} without "..". Unset: the target path itself
    // ("/var/cache/apt"), as in BuildKit. Either way it is a name, never a path: the store must
    // not join it to a directory as it is (name the directory by a digest of the id).
    std::string id;
    std::string target; // absolute, normalized ("/var/cache/apt"), not "/"
    Sharing sharing = Sharing::locked;
    Location where;
};

// secret = { id = "npmrc", target = "/root/.npmrc" } or { id = "token", env = "TOKEN" }: a value
// the build is given (not the recipe) and the run sees; never stored, never in a cache key.
struct SecretMount {
    std::string id;     // [A-Za-z0-9][A-Za-z0-9._-]{0,63} without ".."
    std::string target; // a file mounted read-only at this absolute path; or empty
    std::string env;    // or this variable ([A-Za-z_][A-Za-z0-9_]*) set for the run; or empty
    Location where;     // exactly one of target and env is set
};

// [[step]] run = "…" (shell form) or run = ["prog", "arg"] (exec form).
struct RunStep {
    enum class Form {
        shell, // `shell` + `script`: ["/bin/sh", "-c", "apt-get update && …"]
        exec,  // `exec` as it is, no shell
    };
    Form form = Form::shell;
    std::string script;                                   // shell form: the command line
    std::vector<std::string> exec;                        // exec form: argv, never empty
    std::vector<std::string> shell = {"/bin/sh", "-c"};   // shell form: runs `script`
    std::vector<std::pair<std::string, std::string>> env; // this step only, in recipe order
    // Empty: unset, so the base's config decides (not this stage's [config], which describes
    // the finished image), else root.
    std::string user;
    // Empty: unset, so the base's config decides, else "/". Otherwise absolute.
    std::string workdir;
    bool network = true; // false: a network namespace with loopback only
    // Whose CA bundle the step's TLS clients trust: host (the host's, mounted read-only for
    // the step only, with SSL_CERT_FILE & co. pointing at it) or image (the image's own).
    enum class Trust { host, image };
    Trust trust = Trust::host;
    std::vector<CacheMount> cache;
    std::vector<SecretMount> secrets;
    Location where; // of the `run` value

    // What the runtime executes: shell + script, or exec.
    std::vector<std::string> argv() const;
};

// git = { url, ref, dest, submodules, keep_git, depth, mtime }: a commit's tree as a layer.
struct GitStep {
    std::string url;          // as written; credentials in it never reach a key, log or layer
    std::string ref = "HEAD"; // a branch, a tag, a full ref name or a 40-hex commit id
    std::string dest;         // absolute, normalized
    bool submodules = false;  // each submodule pinned at its gitlink commit
    bool keep_git = false;    // a working clone's .git under dest (`git pull` works inside)
    int depth = 0;            // keep_git: the last `depth` commits only (0: all)
    enum class Mtime { epoch, commit };
    Mtime mtime = Mtime::epoch; // the image's epoch, or the commit's committer time
    // A --secret id whose value ("user:token", or a token alone) authenticates https fetches;
    // "" for none. The value reaches no key, log, mirror config or layer.
    std::string secret;
    Location where;
};

// download = { url, sha256, dest, mode, extract }: a file verified by its sha256.
struct DownloadStep {
    std::string url;
    std::string sha256;   // 64 lower-case hex digits
    std::string dest;     // absolute; a trailing '/' (or extract) means a directory
    unsigned mode = 0644; // of the file (not with extract)
    bool extract = false; // unpack a tar, tar.gz, tar.zst or zip into dest
    Location where;
};

// deps = { lockfile = [...], run, dest, cache, … }: the lockfiles copied into dest, then `run`
// there; keyed by the lockfiles' content only (not the rest of the source).
struct DepsStep {
    std::vector<std::string> lockfiles; // relative to the recipe's context, no glob
    std::string dest;                   // absolute; the run's workdir unless it sets one
    RunStep run;                        // run and its options (cache, env, user, network …)
    Location where;
};

enum class StepKind { copy, run, git, download, deps };

struct Step {
    StepKind kind = StepKind::copy;
    std::vector<CopyItem> copy;           // StepKind::copy
    std::optional<RunStep> run;           // StepKind::run
    std::optional<GitStep> git;           // StepKind::git
    std::optional<DownloadStep> download; // StepKind::download
    std::optional<DepsStep> deps;         // StepKind::deps
    Location where;
};

// [config]: the runtime configuration of the image (image-spec config.md).
struct ImageConfig {
    std::vector<std::pair<std::string, std::string>> env; // in recipe order
    std::optional<std::vector<std::string>> entrypoint;
    std::optional<std::vector<std::string>> cmd;
    std::string workdir;
    std::string user;
    std::map<std::string, std::string> labels;
    std::vector<std::string> exposed_ports; // "80/tcp", "53/udp" (a bare "80" becomes "80/tcp")
    std::vector<std::string> volumes;       // absolute paths
    std::string stop_signal;
};

struct Stage {
    std::string name; // "main" for the top-level [base]/[[step]]
    Base base;
    std::vector<Step> steps;
    ImageConfig config; // applied on top of the base's config
    bool has_config = false;
    Location where;
};

// [shell]: defaults for `factory shell` on this recipe's image.
struct ShellConfig {
    enum class Home {
        persistent, // a HOME kept per environment in the store
        host,       // the user's own home directory, bind-mounted
    };
    // Named volumes: name ([A-Za-z0-9][A-Za-z0-9._-]{0,63}, no "..") → absolute path in the
    // shell (normalized, not "/", no two at one path).
    std::map<std::string, std::string> volumes;
    // Host variables passed into the shell when set ([A-Za-z_][A-Za-z0-9_]*), in recipe order.
    std::vector<std::string> env_passthrough;
    std::string hostname; // RFC 1123; empty: unset (factory shell's default)
    Home home = Home::persistent;
    Location where; // of the [shell] table; line 0 when the recipe has none
};

struct Recipe {
    std::filesystem::path file;    // absolute path of the recipe
    std::filesystem::path context; // absolute; [image] context, default: the recipe's directory
    std::string name;              // [image] name, e.g. "hello" or "example.com/team/hello"
    std::vector<std::string> tags; // default ["latest"]
    std::int64_t epoch = 0;        // SOURCE_DATE_EPOCH overrides [image] epoch
    Compression compression = Compression::gzip;
    std::string architecture; // default: the host's, in GOARCH spelling ("amd64")
    std::string os = "linux";
    std::string variant;     // "v7" for "linux/arm/v7"; empty when the platform has none
    std::string ignore_file; // relative to context; default ".factoryignore" if it exists
    std::map<std::string, std::string> annotations;
    std::map<std::string, std::filesystem::path> contexts; // named host directories
    std::map<std::string, std::string> args;               // after --arg overrides
    std::vector<Stage> stages;                             // in dependency order
    std::string output_stage;                              // [image] stage, default: the last
    ShellConfig shell;                                     // [shell]; defaults when absent
    // The recipe's path as the command line gave it (relative stays relative): what messages
    // name, as recipe errors do (RECIPE.lock's among them).
    std::filesystem::path given_file;
};

} // namespace factory::recipe
