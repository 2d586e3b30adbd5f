#pragma once
// `factory pull`, `factory push`, `factory login`, `factory logout` (factory/registry/), and the
// docker:// destinations of `factory build -o` and `factory export`.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "factory/builder/builder.hpp"
#include "factory/registry/client.hpp"

namespace CLI {
class App;
}

namespace factory::cli {

// The options every registry command shares.
struct RegistryFlags {
    std::string tls_verify; // --tls-verify=true|false; empty: true unless the config says insecure
    std::string tls_ca;
    int retries = 4;         // retries after the first attempt
    double retry_time = 120; // seconds
    double timeout = 30;     // a stall longer than this fails the attempt
    int jobs = 4;            // --jobs: blobs at once; at least 1 (transfer_jobs checks it)
    std::string chunk_size;  // push: --chunk-size SIZE (default registry::default_chunk_size)
    std::string progress = "auto";
    std::string pull = "missing"; // build: --pull never|missing|always
};

// Adds the shared options to a subcommand (also `build` and `export`, for their docker://
// outputs).
// Whether a command's --jobs is the registry's (blobs at once) or already another's (build's
// --jobs counts stages; its registry transfers take the default).
enum class JobsFlag { yes, no };
void add_registry_flags(CLI::App& cmd, RegistryFlags& flags, JobsFlag jobs = JobsFlag::yes);

// --jobs, checked: a usage error below 1.
std::size_t transfer_jobs(const RegistryFlags& flags);

// --chunk-size in bytes (a usage error when malformed or below registry::min_chunk_size).
std::uint64_t chunk_size(const RegistryFlags& flags);

// The client options of the flags (TLS, retries, timeouts), validated (usage errors); warns
// when TLS verification is off for `host` (a host, or every_registry for a command whose
// registries are its recipes' bases, caches and outputs).
registry::ClientOptions registry_client_options(const RegistryFlags& flags, Progress* progress,
                                                const std::string& host);
extern const char* const every_registry;

// `build`: --pull, and the flags' options for bases by registry reference.
void add_pull_flag(CLI::App& build, RegistryFlags& flags);
void apply_registry_flags(builder::BuildOptions& options, const RegistryFlags& flags);

class RegistryCommands {
  public:
    // Adds the subcommands to app; cache_dir is the shared --cache value.
    RegistryCommands(CLI::App& app, std::string& cache_dir);
    // After parsing: the exit code of the subcommand given, or nullopt if none of these.
    std::optional<int> dispatch(const std::string& cache_dir);

    RegistryFlags& flags() noexcept { return flags_; }

  private:
    CLI::App* pull_ = nullptr;
    CLI::App* push_ = nullptr;
    CLI::App* login_ = nullptr;
    CLI::App* logout_ = nullptr;
    RegistryFlags flags_;
    std::string pull_ref_, push_src_, push_dest_, platform_, mount_from_;
    std::vector<std::string> push_tags_;
    std::string login_host_, username_, password_;
    bool password_stdin_ = false;
    bool all_tags_ = false;
};

// Removes the docker:// destinations from outputs and returns them, so the rest can go to
// export/. A malformed one is a usage error.
std::vector<std::string> take_registry_outputs(std::vector<std::string>& outputs);

// Pushes the store image `source` (NAME:TAG or sha256:…) to each destination (also tagged
// extra_tags; blobs mounted from mount_from when given); prints "docker://DEST DIGEST" per
// destination. Throws Error.
void push_outputs(const std::vector<std::string>& destinations, const std::string& source,
                  const std::filesystem::path& store_root, const RegistryFlags& flags,
                  const std::vector<std::string>& extra_tags = {},
                  const std::string& mount_from = {});

// `push --all-tags`: every store tag NAME:TAG of name (no tag) to dest (HOST/REPO, no tag) as
// DEST:TAG, each image once with all its tags; prints "docker://DEST:TAG DIGEST" per tag.
void push_all_tags(const std::string& name, const std::string& dest,
                   const std::filesystem::path& store_root, const RegistryFlags& flags,
                   const std::string& mount_from = {});

// `build --push`: the destination of a recipe's image (docker://NAME:TAG, its first tag) and
// the recipe's other tags. A usage error when name names no registry host.
struct RecipePush {
    std::string destination;
    std::vector<std::string> extra_tags;
};
RecipePush recipe_push(const std::string& name, const std::vector<std::string>& tags);
// Reads each recipe's name before a build --push does any work (recipe_push's errors).
void check_recipe_push(const std::vector<std::string>& recipes,
                       const std::map<std::string, std::string>& args);

} // namespace factory::cli
