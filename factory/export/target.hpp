#pragma once
// Output names as skopeo spells them: oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE[:NAME[:TAG]],
// rootfs:DIR, rootfs-tar:FILE, and the disk images ext4:FILE and raw:FILE (docs/ami-bake.md).
// Like containers/image, the path ends at the first ':' (a rootfs or disk path takes the rest).

#include <cstdint>
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
    ext4,       // the same tree as an ext4 file system (mke2fs -d), FILE.json beside it
    raw,        // a GPT disk: that ext4 as root partition (+ an EFI system partition)
};

// Options of the disk formats (ext4, raw); the others ignore them.
struct DiskOptions {
    std::uint64_t size = 0; // bytes of the file system (raw: of the root partition); 0 = auto
    std::string label;      // file system label, at most 16 bytes; "" = "rootfs"
};

struct Target {
    Format format;
    fs::path path;
    std::string ref; // TAG for oci/oci-archive, NAME[:TAG] for docker-archive; "" = default
    DiskOptions disk;
};

// Errors name the accepted forms.
Result<Target> parse_target(std::string_view spec);
std::string to_string(const Target& t);

// A size for --size: bytes, or a number with K, M, G or T (powers of 1024), e.g. "512M".
Result<std::uint64_t> parse_size(std::string_view text);
// --label: at most 16 bytes, no '/' or control character.
Result<void> check_label(std::string_view label);

} // namespace factory::exporter
