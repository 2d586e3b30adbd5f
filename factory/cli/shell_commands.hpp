#pragma once
// `factory run`, `factory shell` and `factory ps` (factory/shell/session.hpp): their CLI11
// subcommands.

#include <optional>
#include <string>
#include <vector>

#include "factory/cli/registry_commands.hpp"
#include "factory/shell/session.hpp"

namespace CLI {
class App;
}

namespace factory::cli {

class ShellCommands {
  public:
    // Adds the subcommands to app; cache_dir is the shared --cache value.
    ShellCommands(CLI::App& app, std::string& cache_dir);
    // After parsing: the exit code of the subcommand that was given, or nullopt if neither was.
    // Throws Error like the other commands.
    std::optional<int> dispatch(const std::string& cache_dir);
    // True if `run` or `shell` was given.
    bool parsed() const;

  private:
    CLI::App* run_ = nullptr;
    CLI::App* shell_ = nullptr;
    CLI::App* ps_ = nullptr;
    std::vector<std::string> run_args_, shell_args_; // --arg
    RegistryFlags run_registry_, shell_registry_;    // for --cache-from and registry bases
    bool stop_ = false;
    bool ps_json_ = false;
    shell::RunOptions run_options_;
    shell::ShellOptions shell_options_;
};

} // namespace factory::cli
