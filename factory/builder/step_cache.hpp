#pragma once
// The build's side of the action cache: what a step's key is made of, the hashing of its
// inputs (through the stat cache), and the explanation of a miss (`factory why`).

#include <filesystem>
#include <map>

#include <sys/stat.h>
#include <optional>
#include <string>
#include <vector>

#include "cache/action_store.hpp"
#include "cache/key.hpp"
#include "cache/stat_cache.hpp"
#include "factory/layer/entry.hpp"

namespace factory::builder {

// A copy step's inputs: one InputFile per planned entry, content hashed through the stat
// cache (in parallel when files must be read). Throws Error if a source can't be hashed.
// `stats` (optional, one per entry as CopyContext::stats gives them) holds the lstat of sources
// taken while planning: a stat-cache hit then costs no system call.
std::vector<cache::InputFile> hash_inputs(const std::vector<layer::Entry>& entries,
                                          cache::StatCache& stat_cache, unsigned threads,
                                          const std::vector<struct stat>* stats = nullptr);

// Why a step missed, in words, comparing what it is keyed on now with the record of its last
// build (nullopt: the step was never built, or its record is gone). One line per reason, e.g.
// "/src/main.c changed (sha256 ab12… → cd34…)". `sources` maps an image path to the file it
// is copied from, named in the message when known ("src/main.c → /src/main.c changed …").
std::vector<std::string> explain_miss(const cache::Fields& now,
                                      const std::vector<cache::InputFile>& inputs_now,
                                      const std::optional<cache::ActionRecord>& last,
                                      bool parent_missed,
                                      const std::map<std::string, std::string>& sources = {});

// The identity of "the same step" across edits of a recipe: its file, stage and position.
std::string step_identity(const std::filesystem::path& recipe, const std::string& stage,
                          std::size_t index);

} // namespace factory::builder
