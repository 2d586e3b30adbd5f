#pragma once
// FILE.json beside each disk export (ext4:, raw:): what a bake pipeline checks before it
// uploads the disk: the image it came from, the output's sha256 and sizes, the partition table,
// and the Debian packages inside when the image has a dpkg status file.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace factory::exporter {

struct Package {
    std::string name, version, architecture;
};

struct Partition {
    std::string name;      // GPT partition name ("root", "esp")
    std::string type_guid; // GPT partition type
    std::string uuid;      // the partition's unique GUID
    std::string fs_uuid;   // the file system's UUID (ext4) or volume id (FAT, "XXXX-XXXX")
    std::uint64_t start = 0, size = 0; // bytes
    std::string filesystem;            // "ext4", "vfat"
};

struct DiskManifest {
    std::string image;               // the manifest digest
    std::string format;              // "ext4", "raw"
    std::string file;                // the output's name (no directory)
    std::string sha256;              // of the output
    std::uint64_t size = 0;          // bytes of the output
    std::uint64_t content_bytes = 0; // bytes of the image's files
    std::uint64_t files = 0;         // entries of the flattened tree
    std::string uuid;                // the ext4 file system's (ext4), the disk's GUID (raw)
    std::string label;               // the ext4 label
    std::vector<Partition> partitions;
    std::optional<std::vector<Package>> packages; // nullopt: no var/lib/dpkg/status
};

// The installed packages of a dpkg status file ("Status: install ok installed"), sorted by
// name. Lines it does not know are ignored.
std::vector<Package> parse_dpkg_status(std::string_view text);

// The packages of the tree at root (var/lib/dpkg/status, read inside the root); nullopt when
// there is none.
std::optional<std::vector<Package>> read_packages(const std::filesystem::path& root);

// Pretty JSON with a trailing newline, fields in the order above.
std::string to_json(const DiskManifest& m);

// sha256 hex of a file (a sparse one reads its holes as zeros). Throws Error.
std::string sha256_of_file(const std::filesystem::path& file);

} // namespace factory::exporter
