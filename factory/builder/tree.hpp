#pragma once
// The merged file system of a stage as far as the build knows it: every entry of its layers,
// later layers winning, whiteouts applied. Copy steps read `from` another stage through it,
// and take parent directories' metadata from it. Content stays where it is (a host file or a
// file extracted from a base layer), so a Tree is small: no file data in memory.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "factory/layer/entry.hpp"
#include "factory/runtime/layer_stream.hpp"
#include "factory/util/error.hpp"

namespace factory::builder {

class Tree {
  public:
    // Applies one layer's entries on top (image-spec layer.md "Applying Changesets"): an entry
    // replaces what was at its path (a directory over a directory keeps its children), a
    // `.wh.NAME` removes NAME and what is below it, `.wh..wh..opq` empties its directory.
    void apply(const std::vector<layer::Entry>& entries);
    // Reads a layer blob (tar, tar+gzip or tar+zstd) through runtime's TarReader — the one
    // reader of every layer, with its caps on size and compression ratio — and applies it.
    // Regular files' content is extracted to numbered files under `content_dir` ("" = none) —
    // never to a path taken from the archive. Throws Error on a bad layer.
    void apply_layer_blob(const std::filesystem::path& blob,
                          const std::filesystem::path& content_dir,
                          const runtime::StreamLimits& limits = {});

    const layer::Entry* find(const std::string& path) const;
    // Resolves symlinks in `path` inside the tree (an absolute link target is taken from the
    // tree's root; ".." never leaves it). Follows the last component too when follow_last.
    std::optional<std::string> resolve(const std::string& path, bool follow_last = true) const;
    // The entries strictly below `dir` ("" = the root), in path order.
    std::vector<const layer::Entry*> below(const std::string& dir) const;
    // Every path in the tree, in order.
    const std::map<std::string, layer::Entry>& entries() const noexcept { return entries_; }

  private:
    void remove_subtree(const std::string& path, bool keep_self);
    std::map<std::string, layer::Entry> entries_;
    std::size_t extracted_ = 0;
};

} // namespace factory::builder
