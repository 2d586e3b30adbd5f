#include "factory/export/target.hpp"

namespace factory::exporter {

namespace {
// Every form `build -o` and `export` take: docker:// outputs are taken out for pushing before
// the rest are parsed here, but a user who mistyped one needs to see it in the list.
constexpr const char* forms =
    "expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME[:TAG]], "
    "rootfs:DIR, rootfs-tar:FILE, ext4:FILE, raw:FILE or docker://HOST/REPO[:TAG]";
} // namespace

Result<Target> parse_target(std::string_view spec) {
    auto colon = spec.find(':');
    if (colon == std::string_view::npos)
        return Unexpected("invalid output \"" + std::string(spec) + "\": " + forms);
    auto kind = spec.substr(0, colon);
    auto rest = spec.substr(colon + 1);
    Target t;
    if (kind == "oci")
        t.format = Format::oci_dir;
    else if (kind == "oci-archive")
        t.format = Format::oci_archive;
    else if (kind == "docker-archive")
        t.format = Format::docker_archive;
    else if (kind == "rootfs")
        t.format = Format::rootfs_dir;
    else if (kind == "rootfs-tar")
        t.format = Format::rootfs_tar;
    else if (kind == "ext4")
        t.format = Format::ext4;
    else if (kind == "raw")
        t.format = Format::raw;
    else
        return Unexpected("invalid output \"" + std::string(spec) + "\": unknown transport \"" +
                          std::string(kind) + "\"; " + forms);
    // A flattened root file system has no name: the whole rest is the path.
    bool named = t.format == Format::oci_dir || t.format == Format::oci_archive ||
                 t.format == Format::docker_archive;
    auto sep = named ? rest.find(':') : std::string_view::npos;
    t.path = std::string(rest.substr(0, sep));
    if (sep != std::string_view::npos) t.ref = std::string(rest.substr(sep + 1));
    if (t.path.empty())
        return Unexpected("invalid output \"" + std::string(spec) + "\": no path; " + forms);
    if (sep != std::string_view::npos && t.ref.empty())
        return Unexpected("invalid output \"" + std::string(spec) + "\": empty name after ':'");
    if (t.format != Format::docker_archive && t.ref.find(':') != std::string::npos)
        return Unexpected("invalid output \"" + std::string(spec) + "\": a TAG can't contain ':'");
    return t;
}

std::string to_string(const Target& t) {
    std::string kind = t.format == Format::oci_dir       ? "oci"
                       : t.format == Format::oci_archive ? "oci-archive"
                       : t.format == Format::rootfs_dir  ? "rootfs"
                       : t.format == Format::rootfs_tar  ? "rootfs-tar"
                       : t.format == Format::ext4        ? "ext4"
                       : t.format == Format::raw         ? "raw"
                                                         : "docker-archive";
    return kind + ":" + t.path.string() + (t.ref.empty() ? "" : ":" + t.ref);
}

Result<std::uint64_t> parse_size(std::string_view text) {
    auto bad = [&] {
        return Unexpected("invalid size \"" + std::string(text) +
                          "\": expected bytes or a number with K, M, G or T (512M, 2G)");
    };
    std::uint64_t n = 0;
    std::size_t i = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
        if (n > (UINT64_MAX - 9) / 10) return bad();
        n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
    }
    if (i == 0 || i + 1 < text.size()) return bad();
    unsigned shift = 0;
    if (i < text.size()) {
        switch (text[i]) {
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        case 'T':
        case 't':
            shift = 40;
            break;
        default:
            return bad();
        }
    }
    if (n == 0 || n > (UINT64_MAX >> shift)) return bad();
    return n << shift;
}

Result<void> check_label(std::string_view label) {
    if (label.size() > 16)
        return Unexpected("--label \"" + std::string(label) + "\": longer than 16 bytes");
    for (unsigned char c : label)
        if (c < 0x20 || c == 0x7f || c == '/')
            return Unexpected("--label \"" + std::string(label) + "\": a control character or '/'");
    return {};
}

} // namespace factory::exporter
