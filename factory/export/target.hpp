#pragma once
// Output names as skopeo spells them: oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE[:NAME[:TAG]],
// rootfs:DIR, rootfs-tar:FILE. Like containers/image, the path ends at the first ':'.

#include <filesystem>
#include <string>
#include <string_view>

#include "factory/util/error.hpp"

namespace factory::exporter {

namespace fs = std::filesystem;

enum class Format {
    oci_dir,
    oci_archive,
    docker_archive,
    rootfs_dir, // the layers applied in order into a directory (for an AMI bake)
    rootfs_tar, // the same as one deterministic tar
};

struct Target {
    Format format;
    fs::path path;
    std::string ref; // TAG for oci/oci-archive, NAME[:TAG] for docker-archive; "" = default
};

// Errors name the accepted forms.
Result<Target> parse_target(std::string_view spec);
std::string to_string(const Target& t);

} // namespace factory::exporter
