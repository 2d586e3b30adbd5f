#pragma once
// Executing a RUN step: the stage's layers as overlay snapshots, a fresh upper directory, the
// command under crun or runc, the upper directory back as layer entries. Cache mounts are
// locked directories of the store; secrets are handed over for the run only.

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cache/blob_store.hpp"
#include "factory/layer/entry.hpp"
#include "factory/oci/descriptor.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/runtime/runtime.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

struct RunContext {
    std::filesystem::path store_root;
    cache::BlobStore* blobs = nullptr;
    const runtime::RuntimeChoice* runtime = nullptr;
    std::vector<oci::Descriptor> layers; // the stage's layers, bottom first
    std::vector<std::string> diff_ids;   // their diff_ids, same order
    std::vector<std::string> env;        // the stage's config env ("NAME=value")
    std::string user;                    // the stage's config user ("" = root)
    std::string workdir;                 // the stage's config workdir ("" = /)
    std::int64_t epoch = 0;
    const std::map<std::string, std::string>* secrets = nullptr; // id → value (--secret)
    std::function<void(std::string_view)> on_output;             // one line of the command
};

// The result of a run: the upper directory's entries, whose sources live in `scratch` — keep
// it until the layer is written.
struct RunOutcome {
    std::vector<layer::Entry> entries;
    std::unique_ptr<TempDir> scratch;
};

// The environment a RUN step sees: the stage's config env, then the step's, then
// SOURCE_DATE_EPOCH (so tools that honour it write reproducible timestamps).
std::vector<std::string> run_environment(const RunContext& ctx, const recipe::RunStep& step);

// Throws Error: ExitCode::failure with the command's exit code and its last output lines when
// it fails, ExitCode::usage for a secret the command line didn't provide.
RunOutcome execute_run(const RunContext& ctx, const recipe::RunStep& step, const std::string& id);

// Where a cache mount's content lives: ROOT/mounts/<sha256(id) first 32 hex>.
std::filesystem::path cache_mount_dir(const std::filesystem::path& store_root,
                                      const std::string& id);

} // namespace factory::builder
