#pragma once
// The small grammars a recipe's values must follow. Each is a pure function of its input;
// the callers turn a rejection into a located error message.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace factory::recipe::detail {

// distribution-spec / docker reference name: an optional registry "host[:port]/" prefix
// (recognised, as docker does, by a '.' or ':' in the first component or "localhost"), then
// path components [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* joined by "/". At most 255 bytes.
bool is_image_name(std::string_view name);

// (Tags: is_image_tag, util/image_names.hpp.)

// image-spec annotations.md org.opencontainers.image.ref.name: the TAG of "oci:DIR:TAG".
bool is_ref_name(std::string_view ref);

// [args] names and ${NAME} references: [A-Za-z_][A-Za-z0-9_]*
bool is_arg_name(std::string_view name);

// [stage.NAME]: [a-z0-9][a-z0-9_-]*, at most 64 bytes. No '.' so that [stage.NAME.base]
// stays unambiguous.
bool is_stage_name(std::string_view name);

// [contexts] names: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 bytes.
bool is_context_name(std::string_view name);

// The variant of "os/arch/variant" ("v7", "v8"): [a-z0-9]+, at most 16 bytes.
bool is_platform_variant(std::string_view variant);

// "80", "80/tcp", "53/udp", "9/sctp" → "80/tcp" …; nullopt if the port is not 1..65535 in
// plain decimal or the protocol is not tcp, udp or sctp.
std::optional<std::string> normalize_port(std::string_view port);

// "uid[:gid]" or "name[:group]" (mixing allowed); names are [A-Za-z0-9_.-]+ and numeric
// parts must be below 2^31.
bool is_user(std::string_view user);

// "SIGTERM", "SIGRTMIN+3" or a number 1..64.
bool is_stop_signal(std::string_view signal);

// Go's GOARCH spellings used by OCI platforms.
bool is_goarch(std::string_view arch);

// `uname -m` → GOARCH ("x86_64" → "amd64", "armv7l" → "arm" with variant "v7"); nullopt
// for a machine we don't know.
struct Arch {
    std::string arch;
    std::string variant;
};
std::optional<Arch> goarch_from_machine(std::string_view machine);

// Cache mount ids, secret ids, [shell] volume names: [A-Za-z0-9][A-Za-z0-9._-]{0,63} and no
// ".." anywhere, so that no consumer can turn one into a path outside its directory (buildah
// CVE-2024-9675 let a cache id of "../../" mount the host's root).
bool is_mount_id(std::string_view id);

// Environment variable names a recipe passes to or sets for a process: [A-Za-z_][A-Za-z0-9_]*.
bool is_env_name(std::string_view name);

// RFC 1123 host name: labels [A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])? joined by '.', at
// most 253 bytes.
bool is_hostname(std::string_view name);

// Debian suite ("bookworm", "stable", "bookworm-backports"): [a-z0-9][a-z0-9-]*, at most 64
// bytes (no leading '-': it would read as an option).
bool is_debian_suite(std::string_view suite);

// Debian policy 5.6.1 package name: [a-z0-9][a-z0-9+.-]+ (at least two characters).
bool is_debian_package(std::string_view name);

// Archive component ("main", "contrib", "non-free-firmware"): [a-z0-9][a-z0-9-]*, at most 64.
bool is_debian_component(std::string_view component);

// mmdebstrap's package-set variants a recipe may name, in the order messages list them.
const std::vector<std::string>& debian_variants();

// An http:// or https:// URL with a host, no whitespace, control characters or ','
// (mmdebstrap splits mirror lists on it).
bool is_http_url(std::string_view url);

// GOARCH (+ variant) → Debian architecture: amd64 → amd64, arm/v7 → armhf, arm/v5|v6 →
// armel, 386 → i386, ppc64le → ppc64el, mips64le → mips64el … nullopt when Debian has none
// (or, for "arm" without a variant, when it is ambiguous).
std::optional<std::string> debian_arch_from_goarch(std::string_view arch, std::string_view variant);

// The Debian architectures debian_arch_from_goarch can produce, in the order messages list them.
const std::vector<std::string>& debian_architectures();

// True if a '/'-separated path has a ".." component.
bool has_dotdot(std::string_view path);

// An absolute path with repeated '/', "." components and a trailing '/' removed
// ("/var//cache/./apt/" → "/var/cache/apt"; "/" stays "/"). The caller rejects ".." first.
std::string normalize_absolute(std::string_view path);

} // namespace factory::recipe::detail
