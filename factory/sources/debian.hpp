#pragma once
// Debian base file systems (DESIGN.md "Recipes": [base] debian = { … }; docs/debian.md):
// mmdebstrap bootstraps a root file system into a fresh directory, debian_entries turns it into
// the entries of a layer with the normalization of RUN layers, resolved_packages says which
// package versions it holds.
//
//   DebianSpec ──bootstrap_debian──▶ WORK/debian-XXXXXX/ (a plain tree, as root)
//              ──debian_entries──▶ layer::Entry list ──layer::write_layer──▶ the base layer
//              ──resolved_packages──▶ "name=version\n…" (for a lock / the cache key)
//
// Knows nothing of recipes: the build module translates recipe::DebianBase into a DebianSpec.

#include "factory/layer/entry.hpp"
#include "factory/runtime/runtime.hpp"
#include "factory/util/error.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace factory::sources {

namespace fs = std::filesystem;

// What to bootstrap. Every field is passed to mmdebstrap; each is checked against its grammar
// first (bootstrap_debian refuses anything that could read as another option).
struct DebianSpec {
    std::string suite;                // "bookworm", "stable": [a-z0-9][a-z0-9-]*
    std::string variant = "minbase";  // minbase|buildd|apt|essential|required|important|standard
    std::vector<std::string> include; // extra packages (Debian names); order doesn't matter
    std::string mirror;               // http(s) URL; empty: resolve_mirror()
    std::vector<std::string> components = {"main"};
    std::string architecture; // Debian spelling ("amd64", "armhf"); empty: the host's
    // apt options (--aptopt). They stay in the image (/etc/apt/apt.conf.d/99mmdebstrap), so
    // only what the image should keep; proxies go in the environment (http_proxy), which
    // mmdebstrap passes to apt.
    std::vector<std::string> aptopts;
};

struct DebianRootfs {
    fs::path dir;                     // the root file system: WORK/debian-XXXXXX
    std::string mirror;               // the mirror it came from
    std::vector<std::string> command; // the full command run, for logs
};

// The Debian archive URL this host uses, read from HOST_ROOT/etc/apt/sources.list and
// HOST_ROOT/etc/apt/sources.list.d/*.list and *.sources (in the order apt reads them; one-line
// and deb822 formats; disabled and deb-src entries skipped; http and https only): the first
// `deb` entry that lists `suite`, else the first whose URL ends in "/debian", else
// "http://deb.debian.org/debian". Never fails: unreadable files are skipped.
std::string default_mirror(const std::string& suite, const fs::path& host_root = "/");

// spec.mirror, or default_mirror(spec.suite) when it is empty.
std::string resolve_mirror(const DebianSpec& spec, const fs::path& host_root = "/");

// mmdebstrap's arguments (without the program) for bootstrapping `spec` from `mirror` into
// `target`: --mode=root --format=directory --variant=… [--include=a,b] --components=…
// [--architectures=…] [--aptopt=…]… -- SUITE TARGET MIRROR. Errors: a field that breaks its
// grammar ("invalid package name \"--hook\"").
Result<std::vector<std::string>> mmdebstrap_args(const DebianSpec& spec, const fs::path& target,
                                                 const std::string& mirror);

struct BootstrapControl {
    // Polled every 100 ms: when true, mmdebstrap and everything it started are killed and
    // bootstrap_debian fails with "cancelled".
    const std::atomic<bool>* cancel = nullptr;
    // Where to look for mmdebstrap ("" = $PATH, then /usr/bin, /usr/sbin).
    fs::path mmdebstrap;
};

// Runs mmdebstrap (as root, --mode=root) into a fresh directory WORK_DIR/debian-XXXXXX and
// returns it. The environment is ours with SOURCE_DATE_EPOCH=`source_date_epoch` (mmdebstrap
// then removes its logs and machine ids, and maintainer scripts date things with it), LC_ALL=C,
// TZ=UTC and umask 022, so the host's locale, zone and umask don't reach the tree. It runs in
// its own mount and pid namespaces: the /proc, /sys and /dev mounts it makes inside the tree
// vanish with it, even when it is killed, so the directory is always safe to remove. Every
// output line goes to `on_line` (may be empty). Errors: not root, mmdebstrap missing, an
// invalid spec, mmdebstrap failing (its exit code and last error line); the directory is
// removed on failure. The caller removes it after use.
Result<DebianRootfs> bootstrap_debian(const DebianSpec& spec, const fs::path& work_dir,
                                      std::int64_t source_date_epoch,
                                      runtime::OutputCallback on_line,
                                      const BootstrapControl& control = {});

// Told about each entry a layer can't hold that debian_entries skipped (outside dev/).
using SkipCallback = std::function<void(const std::string& path, const std::string& why)>;

// A bootstrapped tree → the entries of its layer, in canonical order, content not read (each
// file's `source` is its path under `dir`). runtime::diff_upper walks it; then, for a base:
//   dev/*                      dropped (mmdebstrap's device nodes and links; the runtime
//                              mounts a fresh /dev); the dev directory itself stays
//   etc/hostname, etc/resolv.conf  dropped (mmdebstrap copies the host's; the runtime
//                              provides both)
//   etc/machine-id             kept, emptied ("generate at boot", as systemd does)
//   runtime::is_noise files    dropped (logs, apt's binary caches, ldconfig's aux-cache,
//                              dpkg and debconf *-old backups)
//   files under run/ and tmp/  dropped; the directories stay (base-files makes run/lock)
//   etc/ssl/certs/java/cacerts Java's trust store: each entry's date set to `epoch`
//                              (runtime/java_keystore.hpp)
// A name starting with ".wh." is an error (a reader would take it for a whiteout). Other
// devices, FIFOs and sockets outside dev/ are skipped and reported to `on_skip`.
Result<std::vector<layer::Entry>> debian_entries(const fs::path& dir, std::int64_t epoch,
                                                 const SkipCallback& on_skip = {});

// The packages installed in the tree at `dir`, from var/lib/dpkg/status (Status "install ok
// installed" only): one "name=version" line each, sorted bytewise, each ending in '\n'; a
// package of another architecture than the tree's (var/lib/dpkg/arch) and not "all" is
// written "name:arch=version". With the suite, variant and mirror this pins a base: the cache
// key of a Debian base can use it once a lock file records it (without one, the key can only
// hold the spec, and a cached base is reused however the archive moved on).
Result<std::string> resolved_packages(const fs::path& dir);

} // namespace factory::sources
