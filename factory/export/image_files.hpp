#pragma once
// The flattened file tree of an image as metadata: every layer read in order through the capped
// layer stream (runtime/layer_stream.hpp) and libarchive's reader (never its disk writer),
// whiteouts and opaque directories resolved as image-spec layer.md says, nothing written to
// disk. For `factory inspect --files`, `factory diff` and the fix-ups of the disk exports.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/layout.hpp"
#include "factory/util/error.hpp"

namespace factory::exporter {

enum class FileType : char {
    file = 'f',
    dir = 'd',
    symlink = 'l',
    hardlink = 'h', // a regular file sharing its content with `link`
    chardev = 'c',
    blockdev = 'b',
    fifo = 'p',
};

struct FileInfo {
    FileType type = FileType::file;
    std::uint32_t mode = 0; // permission bits with setuid/setgid/sticky (07777)
    std::int64_t uid = 0, gid = 0;
    std::uint64_t size = 0; // content bytes (a hard link: its target's)
    std::int64_t mtime = 0; // seconds
    std::string link;       // symlink target, or the path a hard link names
    std::string sha256;     // content of a file or hard link (lower-case hex)
    std::uint32_t major = 0, minor = 0;
    std::map<std::string, std::string> xattrs;
    std::size_t layer = 0; // index into the image's layers of the last layer that wrote it
    bool implied = false;  // a parent directory no layer listed (0755 root:root)
};

struct LayerInfo {
    std::string digest;
    std::string created_by; // the layer's history entry ("" when absent)
    std::uint64_t size = 0; // compressed blob bytes
    std::uint64_t entries = 0;
};

struct ImageFiles {
    std::string digest;                    // the image manifest's
    std::map<std::string, FileInfo> files; // path without a leading '/' → metadata ("" = root)
    // Paths a layer removed (a whiteout, an opaque directory or a replacement) and that no
    // later layer wrote again → the index of that layer.
    std::map<std::string, std::size_t> removed;
    std::vector<LayerInfo> layers;
    std::int64_t created = 0; // the config's `created`, in seconds (0 when absent)
};

// Reads the image `manifest` of `store` (layers verified against their digest and diff_id).
// Throws Error naming the layer and the entry.
ImageFiles read_image_files(const oci::Layout& store, const oci::Descriptor& manifest);

// Flattens the image into `root` (an empty directory) as flatten_image does, and returns its
// files from the same pass over each layer, without content digests (FileInfo::sha256 empty):
// what ext4: needs, for one read of every layer instead of two. Throws Error.
ImageFiles flatten_image_files(const oci::Layout& store, const oci::Descriptor& manifest,
                               const std::filesystem::path& root);

// The config's `created` in seconds since the epoch (0 when absent or malformed).
std::int64_t created_epoch(const oci::ImageConfig& config);

// "file", "dir", "symlink", "hardlink", "char", "block", "fifo".
const char* type_name(FileType t);

} // namespace factory::exporter
