#include "factory/export/target.hpp"

namespace factory::exporter {

namespace {
constexpr const char* forms =
    "expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME[:TAG]]";
}

Result<Target> parse_target(std::string_view spec) {
    auto colon = spec.find(':');
    if (colon == std::string_view::npos)
        return Unexpected("invalid output \"" + std::string(spec) + "\": " + forms);
    auto kind = spec.substr(0, colon);
    auto rest = spec.substr(colon + 1);
    Target t;
    if (kind == "oci") t.format = Format::oci_dir;
    else if (kind == "oci-archive") t.format = Format::oci_archive;
    else if (kind == "docker-archive") t.format = Format::docker_archive;
    else
        return Unexpected("invalid output \"" + std::string(spec) + "\": unknown transport \"" +
                          std::string(kind) + "\"; " + forms);
    auto sep = rest.find(':');
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
                                                         : "docker-archive";
    return kind + ":" + t.path.string() + (t.ref.empty() ? "" : ":" + t.ref);
}

} // namespace factory::exporter
