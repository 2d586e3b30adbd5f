#pragma once
// What changed between two images, file by file (`factory diff A B`): added, removed and changed
// paths of the flattened trees (image_files.hpp), each attributed to the layer of B that brought
// it, and a summary per layer of B. Times are not compared (a rebuild moves them, the epoch
// pins them); content, type, mode, owner, link target and xattrs are.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "factory/export/image_files.hpp"

namespace factory::exporter {

enum class ChangeKind { added, removed, changed };

struct FileChange {
    std::string path; // without the leading '/' ("" = the root)
    ChangeKind kind = ChangeKind::changed;
    std::vector<std::string> what; // changed: "type", "content", "mode", "owner", "link", "xattrs"
    std::optional<FileInfo> a, b;  // the entry in A (removed, changed) and in B (added, changed)
    // The layer of B that brought the change: the one that wrote the path (added, changed), or
    // removed it (a whiteout, an opaque directory), or else, for a path no longer written, the
    // layer of B in the position of A's layer that wrote it. nullopt when B has no such layer.
    std::optional<std::size_t> layer;
};

struct LayerSummary {
    std::size_t index = 0;
    LayerInfo info;
    std::uint64_t added = 0, changed = 0, removed = 0;
    std::uint64_t bytes = 0; // content bytes of the files this layer added or changed
    bool shared = false;     // the same layer at the same position in A
};

struct ImageDiff {
    std::string a, b;                 // manifest digests
    std::vector<FileChange> changes;  // sorted by path
    std::vector<LayerSummary> layers; // one per layer of B
};

ImageDiff diff_images(const ImageFiles& a, const ImageFiles& b);

// What differs between two entries of one path, times aside: "type", "content", "device",
// "mode", "owner", "link", "xattrs" (a hard link and a file are the same type).
std::vector<std::string> file_differences(const FileInfo& a, const FileInfo& b);

const char* kind_name(ChangeKind k); // "added", "removed", "changed"

} // namespace factory::exporter
