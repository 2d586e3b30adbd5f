#pragma once
// `factory cache stats|ls|prune|verify` and `factory why`.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "factory/builder/builder.hpp"

namespace factory::cli {

struct PruneArgs {
    std::string max_size;   // "10G"
    std::string older_than; // "7d"
    bool dry_run = false;
};
// zero: reset the counters after printing them (stats.json's size estimate is kept).
int run_cache_stats(const std::filesystem::path& root, bool json, bool zero);
int run_cache_ls(const std::filesystem::path& root);
int run_cache_prune(const std::filesystem::path& root, const PruneArgs& args);
// Exit 0 when the store is clean (after repair, with --repair), 1 otherwise.
int run_cache_verify(const std::filesystem::path& root, bool repair);

struct WhyArgs {
    std::string recipe;
    std::optional<int> step; // --step: 1-based, in build order; nullopt = all
    std::vector<std::string> args;
};
int run_why(builder::BuildOptions options, const WhyArgs& args);

} // namespace factory::cli
