#pragma once
// `factory cache export REF` and `factory cache import REF`: the registry cache of
// docs/cache.md "Remote cache" outside a build (a nightly job that warms it, an agent image
// baked with it), and build's --cache-to/--cache-from.

#include <optional>
#include <string>
#include <vector>

#include "factory/builder/builder.hpp"
#include "factory/cli/registry_commands.hpp"

namespace CLI {
class App;
}

namespace factory::cli {

// build's --cache-to and --cache-from.
void add_remote_cache_flags(CLI::App& build, std::vector<std::string>& cache_from,
                            std::string& cache_to);

class RemoteCacheCommands {
  public:
    // Adds `export` and `import` to the `cache` command; cache_dir is the shared --cache value.
    RemoteCacheCommands(CLI::App& cache_cmd, std::string& cache_dir);
    // After parsing: the exit code of the subcommand given, or nullopt if neither.
    std::optional<int> dispatch(const std::string& cache_dir);

  private:
    CLI::App* export_ = nullptr;
    CLI::App* import_ = nullptr;
    RegistryFlags flags_;
    std::string ref_;
};

} // namespace factory::cli
