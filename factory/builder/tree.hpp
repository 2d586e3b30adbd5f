#pragma once
// The merged file system of a stage as far as the build knows it: every entry of its layers,
// later layers winning, whiteouts applied. Copy steps read `from` another stage through it,
// and take parent directories' metadata from it. Content stays where it is (a host file, or a
// layer's entry until a copy asks for it), so a Tree is small: no file data in memory.

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/layer/entry.hpp"
#include "factory/runtime/layer_stream.hpp"
#include "factory/util/error.hpp"

namespace factory::builder {

// What reading a layer blob's tar found (Tree::list_layer_blob): its entries as a tree takes
// them — in tar order, whiteouts included, no content — and each one's ordinal among the tar's
// entries (1-based), where its content can be found again.
struct LayerListing {
    std::vector<layer::Entry> entries;
    std::vector<std::uint64_t> ordinals;
};

// A listing as bytes, for the store (cache/listings.hpp keeps them, framed and checksummed),
// and back. The bytes name the reader's limits the listing was made under: parse_listing
// refuses a listing made under other limits (its layer might not pass these), and any body
// that is not one serialize_listing wrote — what, and at which byte.
std::string serialize_listing(const LayerListing& listing, const runtime::StreamLimits& limits);
Result<LayerListing> parse_listing(std::string_view body, const runtime::StreamLimits& limits);

class Tree;

// Where the content of a copied file still is: the file at `path` of another stage's tree,
// inside one of its layers (Tree::contents takes it out, Tree::adopt_content passes it on).
struct TreeContent {
    const Tree* tree = nullptr;
    std::string path;
};

class Tree {
  public:
    // Applies one layer's entries on top (image-spec layer.md "Applying Changesets"): an entry
    // replaces what was at its path (a directory over a directory keeps its children), a
    // `.wh.NAME` removes NAME and what is below it, `.wh..wh..opq` empties its directory.
    void apply(const std::vector<layer::Entry>& entries);
    // The same, taking the entries' strings instead of copying them (a copy step's plan).
    void apply(std::vector<layer::Entry>&& entries);
    // Reads a layer blob (tar, tar+gzip or tar+zstd) through runtime's TarReader — the one
    // reader of every layer, with its caps on size and compression ratio — and applies it.
    // With a `content_dir` ("" = none), the content of its regular files can be had later with
    // contents(): nothing is extracted while reading, so a stage others copy one file from
    // costs a read of its layers' headers, not a copy of its files. Throws Error on a bad layer.
    void apply_layer_blob(const std::filesystem::path& blob,
                          const std::filesystem::path& content_dir,
                          const runtime::StreamLimits& limits = {});
    // The two halves of apply_layer_blob: reading the blob (the costly part: every byte is
    // inflated and hashed), and applying what was read — from a listing kept since, the blob
    // itself is not opened until contents() needs a file of it.
    // With a `digest` ("sha256:…"), the blob must hash to it, checked on the way (no pass of
    // its own): else Error "blob sha256:… is corrupt: content hashes to sha256:…".
    static LayerListing list_layer_blob(const std::filesystem::path& blob,
                                        const runtime::StreamLimits& limits = {},
                                        const std::string& digest = {});
    // `check`, when given, is called once before the first content is read from the blob
    // (ensure_tree re-hashes it there): an error it returns is thrown by contents().
    void apply_listing(LayerListing listing, const std::filesystem::path& blob,
                       const std::filesystem::path& content_dir,
                       const runtime::StreamLimits& limits = {},
                       std::function<Result<void>()> check = {});
    // Host files holding the content of the tree's regular files at `paths` that came from a
    // layer blob read with a content_dir (other paths are left out), extracted now — to
    // numbered files under content_dir, never to a path taken from the archive — in one pass
    // per layer for those not extracted before. Safe to call from several threads: the stages
    // copying from one tree at once share what each extracted. Throws Error on a bad layer.
    std::map<std::string, std::string> contents(const std::vector<std::string>& paths) const;
    // The content of `path` (an entry applied without a source) is that of `from_path` in
    // `from`, still in its layer: contents() reads it from there when asked. Nothing happens
    // when `from` holds no such content.
    void adopt_content(const std::string& path, const Tree& from, const std::string& from_path);

    const layer::Entry* find(const std::string& path) const;
    // Resolves symlinks in `path` inside the tree (an absolute link target is taken from the
    // tree's root; ".." never leaves it). Follows the last component too when follow_last.
    std::optional<std::string> resolve(const std::string& path, bool follow_last = true) const;
    // The entries strictly below `dir` ("" = the root), in path order.
    std::vector<const layer::Entry*> below(const std::string& dir) const;
    // Every path in the tree, in order.
    const std::map<std::string, layer::Entry>& entries() const noexcept { return entries_; }

  private:
    struct Lazy;
    // Where a file's content is: entry `ordinal` (1-based) of lazy->blobs[blob].
    struct Pending {
        std::shared_ptr<Lazy> lazy;
        std::size_t blob;
        std::uint64_t ordinal;
    };
    struct LayerBlob {
        std::filesystem::path path;
        runtime::StreamLimits limits;
        std::function<Result<void>()> check; // before the first read; then cleared
    };
    // The layers a tree's content is read from. Shared by the copies of a tree (a stage based
    // on another starts from its tree) and by the trees a copy took content from it into.
    struct Lazy {
        std::mutex mutex;
        std::filesystem::path dir;
        std::vector<LayerBlob> blobs;
        std::map<std::pair<std::size_t, std::uint64_t>, std::string> extracted;
        std::size_t files = 0;
    };
    void remove_subtree(const std::string& path, bool keep_self);
    void apply_whiteouts(const std::vector<layer::Entry>& entries);
    // One entry that is not a whiteout, in place of what is at its path.
    void put(layer::Entry&& entry);
    std::map<std::string, layer::Entry> entries_;
    std::map<std::string, Pending> pending_;
    std::shared_ptr<Lazy> lazy_;
};

} // namespace factory::builder
