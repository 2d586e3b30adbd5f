#include "factory/recipe/grammar.hpp"
#include "factory/util/image_names.hpp"
#include "factory/util/strings.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace factory::recipe::detail {

namespace {

bool is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_alnum(char c) {
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Decimal without sign; nullopt if empty, not all digits or above `max`.
std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t max) {
    if (!all_digits(s) || s.size() > 19) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s)
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (v > max) return std::nullopt;
    return v;
}

} // namespace

bool is_image_name(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    auto slash = name.find('/');
    if (slash != std::string_view::npos) {
        auto first = name.substr(0, slash);
        if (names_a_registry(first)) {
            if (!is_registry_host(first)) return false;
            name = name.substr(slash + 1);
        }
    }
    std::size_t start = 0;
    for (;;) {
        auto next = name.find('/', start);
        if (!is_path_component(name.substr(start, next - start))) return false;
        if (next == std::string_view::npos) return true;
        start = next + 1;
    }
}

bool is_ref_name(std::string_view ref) {
    // component ::= alphanum (separator alphanum)*, separator ::= [-._:@+] | "--",
    // components joined by "/".
    std::size_t i = 0;
    for (;;) {
        std::size_t start = i;
        while (i < ref.size() && is_alnum(ref[i]))
            ++i;
        if (i == start) return false;
        if (i == ref.size()) return true;
        char c = ref[i];
        if (c == '-' && i + 1 < ref.size() && ref[i + 1] == '-') {
            i += 2;
        } else if (c == '-' || c == '.' || c == '_' || c == ':' || c == '@' || c == '+' ||
                   c == '/') {
            ++i;
        } else {
            return false;
        }
    }
}

bool is_arg_name(std::string_view name) {
    if (name.empty() || is_digit(name[0])) return false;
    return std::all_of(name.begin(), name.end(), [](char c) { return is_alnum(c) || c == '_'; });
}

bool is_stage_name(std::string_view name) {
    if (name.empty() || name.size() > 64 || !is_lower_alnum(name[0])) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return is_lower_alnum(c) || c == '_' || c == '-'; });
}

bool is_context_name(std::string_view name) {
    if (name.empty() || name.size() > 64 || !is_alnum(name[0])) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool is_platform_variant(std::string_view variant) {
    return !variant.empty() && variant.size() <= 16 &&
           std::all_of(variant.begin(), variant.end(), is_lower_alnum);
}

std::optional<std::string> normalize_port(std::string_view port) {
    auto slash = port.find('/');
    auto number = port.substr(0, slash);
    std::string_view protocol = "tcp";
    if (slash != std::string_view::npos) protocol = port.substr(slash + 1);
    if (number.size() > 1 && number[0] == '0') return std::nullopt;
    auto value = parse_decimal(number, 65535);
    if (!value || *value == 0) return std::nullopt;
    if (protocol != "tcp" && protocol != "udp" && protocol != "sctp") return std::nullopt;
    return std::string(number) + "/" + std::string(protocol);
}

bool is_user(std::string_view user) {
    auto part_ok = [](std::string_view part) {
        if (part.empty()) return false;
        if (all_digits(part)) return parse_decimal(part, 0x7fffffff).has_value();
        return std::all_of(part.begin(), part.end(),
                           [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
    };
    auto colon = user.find(':');
    if (colon == std::string_view::npos) return part_ok(user);
    return part_ok(user.substr(0, colon)) && part_ok(user.substr(colon + 1));
}

bool is_stop_signal(std::string_view signal) {
    if (all_digits(signal)) {
        auto v = parse_decimal(signal, 64);
        return v && *v >= 1 && signal[0] != '0';
    }
    if (!signal.starts_with("SIG")) return false;
    auto name = signal.substr(3);
    static constexpr std::array<std::string_view, 35> names = {
        "HUP",    "INT",  "QUIT",  "ILL",  "TRAP", "ABRT", "IOT",  "BUS",    "FPE",
        "KILL",   "USR1", "SEGV",  "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD",
        "CLD",    "CONT", "STOP",  "TSTP", "TTIN", "TTOU", "URG",  "XCPU",   "XFSZ",
        "VTALRM", "PROF", "WINCH", "IO",   "POLL", "PWR",  "SYS",  "RTMIN"};
    if (std::find(names.begin(), names.end(), name) != names.end()) return true;
    if (name == "RTMAX") return true;
    // SIGRTMIN+n and SIGRTMAX-n, within the 31 real-time signals Linux has (34..64).
    if (name.starts_with("RTMIN+") || name.starts_with("RTMAX-")) {
        auto n = name.substr(6);
        auto v = parse_decimal(n, 30);
        return v && *v >= 1 && n[0] != '0';
    }
    return false;
}

bool is_goarch(std::string_view arch) {
    static constexpr std::array<std::string_view, 13> known = {
        "386",      "amd64",  "arm",   "arm64",   "loong64", "mips", "mips64",
        "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64", "s390x"};
    return std::find(known.begin(), known.end(), arch) != known.end();
}

std::optional<Arch> goarch_from_machine(std::string_view m) {
    if (m == "x86_64" || m == "amd64") return Arch{"amd64", ""};
    if (m == "aarch64" || m == "arm64" || m == "armv8l" || m == "armv8b") return Arch{"arm64", ""};
    if (m == "i386" || m == "i486" || m == "i586" || m == "i686") return Arch{"386", ""};
    if (m.starts_with("armv7")) return Arch{"arm", "v7"};
    if (m.starts_with("armv6")) return Arch{"arm", "v6"};
    if (m.starts_with("armv5")) return Arch{"arm", "v5"};
    if (m == "arm") return Arch{"arm", ""};
    if (m == "loongarch64") return Arch{"loong64", ""};
    if (is_goarch(m)) return Arch{std::string(m), ""};
    return std::nullopt;
}

bool is_mount_id(std::string_view id) {
    if (id.empty() || id.size() > 64 || !is_alnum(id[0])) return false;
    if (id.find("..") != std::string_view::npos) return false;
    return std::all_of(id.begin(), id.end(),
                       [](char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool is_env_name(std::string_view name) {
    return is_arg_name(name);
}

bool is_hostname(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    std::size_t start = 0;
    for (;;) {
        auto dot = name.find('.', start);
        auto label = name.substr(start, dot - start);
        if (label.size() > 63 || !is_domain_component(label)) return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

bool is_debian_suite(std::string_view suite) {
    return !suite.empty() && suite.size() <= 64 && is_lower_alnum(suite[0]) &&
           std::all_of(suite.begin(), suite.end(),
                       [](char c) { return is_lower_alnum(c) || c == '-'; });
}

bool is_debian_package(std::string_view name) {
    if (name.size() < 2 || !is_lower_alnum(name[0])) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return is_lower_alnum(c) || c == '+' || c == '.' || c == '-';
    });
}

bool is_debian_component(std::string_view component) {
    return !component.empty() && component.size() <= 64 && is_lower_alnum(component[0]) &&
           std::all_of(component.begin(), component.end(),
                       [](char c) { return is_lower_alnum(c) || c == '-'; });
}

const std::vector<std::string>& debian_variants() {
    static const std::vector<std::string> variants = {
        "minbase", "buildd", "apt", "essential", "required", "important", "standard"};
    return variants;
}

bool is_http_url(std::string_view url) {
    std::string_view rest;
    if (url.starts_with("http://"))
        rest = url.substr(7);
    else if (url.starts_with("https://"))
        rest = url.substr(8);
    else
        return false;
    if (rest.empty() || rest[0] == '/' || rest[0] == ':' || rest[0] == '@') return false;
    return std::all_of(url.begin(), url.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u != 0x7f && c != ',';
    });
}

namespace {

struct DebianArch {
    std::string_view goarch, variant, debian;
};
// Debian's port names for the GOARCH values of is_goarch ("mips" and "mips64" big-endian
// have no Debian port today).
constexpr std::array<DebianArch, 13> debian_arch_table = {{
    {"amd64", "", "amd64"},
    {"arm64", "", "arm64"},
    {"arm", "v7", "armhf"},
    {"arm", "v6", "armel"},
    {"arm", "v5", "armel"},
    {"386", "", "i386"},
    {"ppc64le", "", "ppc64el"},
    {"s390x", "", "s390x"},
    {"riscv64", "", "riscv64"},
    {"mips64le", "", "mips64el"},
    {"mipsle", "", "mipsel"},
    {"loong64", "", "loong64"},
    {"ppc64", "", "ppc64"},
}};

} // namespace

std::optional<std::string> debian_arch_from_goarch(std::string_view arch,
                                                   std::string_view variant) {
    for (const auto& a : debian_arch_table)
        if (a.goarch == arch && a.variant == variant) return std::string(a.debian);
    // arm64's variant ("v8") changes nothing.
    if (arch == "arm64") return "arm64";
    return std::nullopt;
}

const std::vector<std::string>& debian_architectures() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const auto& a : debian_arch_table)
            if (std::find(out.begin(), out.end(), a.debian) == out.end())
                out.emplace_back(a.debian);
        return out;
    }();
    return names;
}

std::string normalize_absolute(std::string_view path) {
    std::string out;
    std::size_t start = 0;
    while (start <= path.size()) {
        auto slash = path.find('/', start);
        if (slash == std::string_view::npos) slash = path.size();
        auto part = path.substr(start, slash - start);
        if (!part.empty() && part != ".") {
            out += '/';
            out += part;
        }
        start = slash + 1;
    }
    return out.empty() ? "/" : out;
}

bool has_dotdot(std::string_view path) {
    std::size_t start = 0;
    for (;;) {
        auto slash = path.find('/', start);
        if (path.substr(start, slash - start) == "..") return true;
        if (slash == std::string_view::npos) return false;
        start = slash + 1;
    }
}

} // namespace factory::recipe::detail
