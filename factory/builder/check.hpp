#pragma once
// `factory build --check`: the reproducibility proof. The recipe is first built as `factory
// build` builds it (what the store has is reused, what it lacks is built and recorded), then
// every step is built again in a scratch store — an empty store in the store's tmp/, removed
// afterwards, so nothing is reused — and each step's result is compared with the one the
// store recorded: a layer by its diff_id, a base image by its manifest digest. For the first
// step that differs, the two layers are compared entry by entry (export/layer_diff.hpp).
//
// What is rebuilt: copy, RUN, deps steps and Debian bases (mmdebstrap again, with the same
// SOURCE_DATE_EPOCH), each from empty cache mounts; an oci: base is imported again. What is
// not, since it is the input the step's key names and is verified by digest: a registry base
// (its blobs are taken from the store, never pulled again), a git step's commit (read from the
// store's mirror, as with --offline) and a download (from the store's downloads, by sha256).

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "factory/builder/builder.hpp"
#include "factory/export/image_diff.hpp"
#include "factory/util/progress.hpp"

namespace factory::builder {

struct CheckedStep {
    std::string id;    // "main 2/3", "main base"
    std::string what;  // "run date +%N > /stamp"
    std::string where; // the step in the recipe: "recipe.toml:7:1"
    std::string kind;  // "run", "copy", "debian" …
    // What each build made: a layer's diff_id, a base image's manifest digest ("" when the
    // step's record has neither).
    std::string stored, rebuilt;
    bool built_first = false; // the store had no record: built by the check's first build
    bool same() const { return stored == rebuilt; }
};

struct CheckReport {
    std::string image;    // "name:tag"
    std::string manifest; // the stored image's manifest digest
    std::vector<CheckedStep> steps;
    std::optional<std::size_t> first_difference; // into steps
    // The first differing step's entries (its layers compared entry by entry) and the two
    // layer blobs, both left in the store for `diffoscope STORED REBUILT`.
    std::vector<exporter::FileChange> files;
    std::filesystem::path stored_blob, rebuilt_blob;
    std::size_t differing = 0; // steps whose results differ
};

// Builds, rebuilds and compares the recipe as described above. The store gets what `factory
// build` would give it (records, blobs, refs) plus, when a layer differs, the rebuilt layer as
// a blob no record names (the next `cache prune` removes it); the scratch store's records never
// reach it. Throws Error as build_recipe does (a failed rebuild is ExitCode::failure).
CheckReport check_recipe(const std::filesystem::path& recipe, const BuildOptions& options,
                         Progress& progress);

} // namespace factory::builder
