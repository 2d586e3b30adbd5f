#pragma once
// Runs a Plan (plan.hpp): its stages as a DAG — a stage starts when the stages it needs are
// done — on a pool bounded for the whole command (`--jobs`), so the stages of one recipe and
// the recipes of one `factory build a.toml b.toml` run at the same time. Every step, whatever
// its kind, goes the same way: key → lookup (or wait for whoever builds the same key) → make on
// a miss → one action record → the stage.

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "factory/builder/builder.hpp"
#include "factory/builder/plan.hpp"
#include "factory/recipe/recipe.hpp"
#include "factory/util/progress.hpp"

namespace factory::builder {

class RemoteCache;

// What the recipes of one command share: the bound on running stages and who is building
// which key (for "waiting for …" in the progress). Thread-safe.
class BuildSession {
  public:
    explicit BuildSession(unsigned jobs); // 0: one per core

    unsigned jobs() const noexcept { return jobs_; }
    // A slot for one running stage: blocks while `jobs` stages run.
    void acquire();
    void release();

    // The key's builder in this process, by its progress id ("" when none).
    void building(const std::string& key, const std::string& who);
    void built(const std::string& key);
    std::string builder_of(const std::string& key);

    // --cache-from: the registry caches a local miss is looked up in (nullptr: none). After a
    // first download failure they are given up for the rest of the command (one warning).
    RemoteCache* remote = nullptr;
    bool remote_usable();
    void remote_failed(const std::string& why); // why: "REF: WHAT FAILED"
    // Every key a build resolved (made, hit or imported), and whether its step is in the output
    // stage: what --cache-to exports.
    void resolved(const std::string& key, bool output_stage);
    std::vector<std::pair<std::string, bool>> resolved_keys();

  private:
    unsigned jobs_;
    unsigned running_ = 0;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::map<std::string, std::string> building_;
    bool remote_failed_ = false;
    std::vector<std::pair<std::string, bool>> resolved_;
};

enum class ExecMode {
    build, // make what misses, publish the output stage
    plan,  // key every step, make nothing (what a miss would make stays undone)
};

// Runs the plan of `recipe` (plan_steps). In plan mode it fills the plan's keys, cached flags
// and reasons and returns an empty result. In build mode it tags the output stage when every
// output is written. `label` prefixes progress ids ("" for a lone recipe). Throws Error.
BuildResult execute(const recipe::Recipe& recipe, Plan& plan, const BuildOptions& options,
                    Progress& progress, BuildSession& session, ExecMode mode,
                    const std::string& label = "");

} // namespace factory::builder
