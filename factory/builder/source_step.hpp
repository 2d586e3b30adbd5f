#pragma once
// The steps that fetch sources into a layer: git (a commit's tree) and download (a file
// verified by its sha256, or an archive unpacked). Each is keyed by what pins its content —
// the resolved commit, the sha256 — never by a URL's credentials, and reads nothing but the
// store and its remote (DESIGN.md "Cache keys").

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/key.hpp"
#include "factory/layer/entry.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/sources/git_mirror.hpp"
#include "factory/util/error.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

struct SourceContext {
    std::filesystem::path store_root;
    bool offline = false;                                        // --offline: the store only
    const std::map<std::string, std::string>* secrets = nullptr; // --secret id → value
    std::function<void(std::string_view)> on_log;                // fetch and retry lines
};

struct BuildOptions;
// The context of a build's options: its store, its secrets, and the store only under
// --offline or for --check's rebuild (sources_from_store).
SourceContext source_context(const BuildOptions& options,
                             std::function<void(std::string_view)> on_log);

// A source step's layer: its entries, whose contents live in `scratch` (keep it until the
// layer is written), and the mtime of every entry when it isn't the image's epoch.
struct SourceOutcome {
    std::vector<layer::Entry> entries;
    std::unique_ptr<TempDir> scratch;
    std::optional<std::int64_t> epoch;
    // The contents of some file entries, read while their layer is written (a git step's
    // blobs not yet kept beside the mirror); null: every entry's source is a file.
    std::unique_ptr<layer::ContentSource> content;
};

// The ref resolved to a commit (one ls-remote for a branch or tag; none for a commit id or
// offline), the mirror holding it. Throws Error naming the step (`id`).
sources::ResolvedRef resolve_git(const SourceContext& ctx, const recipe::GitStep& step,
                                 const std::string& id);

// The mirror made to hold `commit`, which the step's ref named (`name`: the full ref, "HEAD",
// or "" for a commit id) when the step was keyed: fetched by that name, so the next new commit
// of it is an incremental fetch. Throws Error naming the step.
sources::ResolvedRef fetch_git(const SourceContext& ctx, const recipe::GitStep& step,
                               const std::string& commit, const std::string& name,
                               const std::string& id);

// Whether fetch_git's error `e` says the remote has no commit `commit` at all (its fetch went
// fine but did not bring it), as opposed to a remote that could not be asked.
bool commit_not_found(const Error& e, const std::string& commit);

// What the step's ref names upstream now (one ls-remote; no fetch), for `factory lock` to
// notice a pin the branch or tag moved away from. Throws Error naming the step.
sources::ResolvedRef peek_git(const SourceContext& ctx, const recipe::GitStep& step,
                              const std::string& id);

// The git step's key fields: the URL without credentials, the commit, and the options that
// shape the layer (dest, submodules, keep_git, depth, mtime).
void add_git_key(cache::KeyBuilder& kb, const recipe::GitStep& step,
                 const sources::ResolvedRef& resolved);

// The commit's tree under dest (submodules, a working clone's .git as the step says).
SourceOutcome execute_git(const SourceContext& ctx, const recipe::GitStep& step,
                          const sources::ResolvedRef& resolved, const std::string& id);

// The download step's key fields: sha256, dest, mode, extract (not the URL: a file moved to
// another server is the same file).
void add_download_key(cache::KeyBuilder& kb, const recipe::DownloadStep& step);

// The file at dest (dest ending in '/': the URL's last path component in it), or with extract
// the archive's entries under dest. Throws Error: a wrong digest names both (exit 1).
SourceOutcome execute_download(const SourceContext& ctx, const recipe::DownloadStep& step,
                               const std::string& id);

// "git https://host/r.git@main → /src" and the like, for the progress lines.
std::string describe_git(const recipe::GitStep& step);
std::string describe_download(const recipe::DownloadStep& step);

} // namespace factory::builder
