#include "factory/export/target.hpp"

namespace factory::exporter {

namespace {
constexpr const char* forms =
    "expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME[:TAG]], "
    "rootfs:DIR or rootfs-tar:FILE";
}

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
    else
        return Unexpected("invalid output \"" + std::string(spec) + "\": unknown transport \"" +
                          std::string(kind) + "\"; " + forms);
    // A flattened root file system has no name: the whole rest is the path.
    bool named = t.format != Format::rootfs_dir && t.format != Format::rootfs_tar;
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
                                                         : "docker-archive";
    return kind + ":" + t.path.string() + (t.ref.empty() ? "" : ":" + t.ref);
}

} // namespace factory::exporter
