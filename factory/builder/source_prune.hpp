#pragma once
// `factory cache prune` for what source steps keep in the store beside the blobs
// (docs/cache.md "git/ and downloads/"): a git remote's mirror (git/<sha256(url)>.git and its
// blob contents <sha256(url)>.blobs) and a verified download (downloads/<sha256>). Each is
// kept while a step record names it — a git step's git-url, a download step's sha256 — since a
// rebuild of that step reads it; one no record names is removed, with --older-than only once
// it was last fetched longer ago than that.

#include <chrono>
#include <filesystem>
#include <optional>
#include <vector>

#include "cache/blob_store.hpp"
#include "cache/gc.hpp"

namespace factory::builder {

struct SourcePruneOptions {
    std::optional<std::chrono::seconds> older_than;
    bool dry_run = false;
};

// Removes (or, dry_run, lists) the unused mirrors and downloads of the store at `root`, read
// after the records were pruned. The caller holds the store's maintenance lock, so no build
// fetches meanwhile. Items are "mirror" (name: the sha256 of its URL, its directory's stem) and
// "download" (the file's sha256). Throws Error when a record or a directory can't be read.
std::vector<cache::PruneItem> prune_sources(const std::filesystem::path& root,
                                            cache::BlobStore& blobs,
                                            const SourcePruneOptions& options);

} // namespace factory::builder
