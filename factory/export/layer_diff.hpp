#pragma once
// Two layer blobs compared entry by entry (`factory build --check`): the entries as each tar
// lists them — whiteouts are entries like any other, nothing is applied — read through the one
// layer reader (runtime/tar_reader.hpp), with every file's content hashed. Unlike an image diff
// (image_diff.hpp), times count: a step that writes another mtime made another layer.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "factory/export/image_diff.hpp"
#include "factory/export/image_files.hpp"
#include "factory/oci/descriptor.hpp"

namespace factory::exporter {

// One layer's entries: path (without "./" or a leading '/'; "" = the root) → metadata; `layer`
// is 0 for each. Throws Error naming the layer and the entry (a cap, a corrupt stream).
std::map<std::string, FileInfo> read_layer_entries(const std::filesystem::path& blob,
                                                   const oci::Descriptor& layer);

// The entries of B that differ from A's, sorted by path: added, removed, or changed with what of
// "type", "content", "device", "mode", "owner", "link", "xattrs", "mtime" differs.
std::vector<FileChange> diff_layer_entries(const std::map<std::string, FileInfo>& a,
                                           const std::map<std::string, FileInfo>& b);

} // namespace factory::exporter
