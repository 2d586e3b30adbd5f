#pragma once
// `factory lock RECIPE… [--update [NAME]]…` (builder/lock.hpp, docs/lockfile.md).

#include <optional>
#include <string>
#include <vector>

#include "factory/cli/registry_commands.hpp"

namespace CLI {
class App;
}

namespace factory::cli {

class LockCommand {
  public:
    // Adds `lock` to app; cache_dir is the shared --cache value.
    LockCommand(CLI::App& app, std::string& cache_dir, RegistryFlags& registry);
    bool parsed() const;
    // The recipes given (for the rootless decision, before dispatch).
    std::vector<std::string> recipes() const { return recipes_; }
    // After parsing: the exit code, or nullopt when `lock` was not given.
    std::optional<int> dispatch(const std::string& cache_dir);

  private:
    CLI::App* cmd_ = nullptr;
    RegistryFlags& registry_;
    std::vector<std::string> recipes_, args_, secrets_, update_;
    bool offline_ = false;
    std::string progress_ = "auto";
};

} // namespace factory::cli
