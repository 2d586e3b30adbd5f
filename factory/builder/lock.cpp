#include "factory/builder/lock.hpp"

#include <algorithm>
#include <set>

#include "factory/builder/base_registry.hpp"
#include "factory/builder/debian_lock.hpp"
#include "factory/builder/source_step.hpp"
#include "factory/builder/step_kind.hpp"
#include "factory/recipe/parser.hpp"
#include "factory/sources/download.hpp"
#include "factory/sources/remote_url.hpp"
#include "factory/util/files.hpp"

namespace factory::builder {

namespace {

namespace fs = std::filesystem;

std::string joined(std::vector<std::string> items) {
    std::sort(items.begin(), items.end());
    std::string out;
    for (const auto& i : items)
        out += (out.empty() ? "" : " ") + i;
    return out;
}

recipe::Pin base_pin(const recipe::Stage& stage, const recipe::Recipe& recipe) {
    recipe::Pin pin;
    pin.stage = stage.name;
    pin.step = 0;
    if (stage.base.kind == recipe::Base::Kind::registry) {
        pin.kind = "registry";
        pin.fields["reference"] = stage.base.reference;
    } else {
        auto spec = debian_spec(stage, recipe);
        pin.kind = "debian";
        pin.fields["suite"] = spec.suite;
        pin.fields["variant"] = spec.variant;
        pin.fields["mirror"] = spec.mirror;
        pin.fields["include"] = joined(spec.include);
        pin.fields["components"] = joined(spec.components);
        pin.fields["architecture"] = spec.architecture;
    }
    return pin;
}

// The fields a pin resolves (the rest are the recipe's).
bool is_resolved_field(const std::string& kind, const std::string& name) {
    if (kind == "git") return name == "commit" || name == "name";
    if (kind == "registry") return name == "digest";
    return false;
}

std::string short_hex(const std::string& s) {
    auto at = s.find(':');
    std::string hex = at == std::string::npos ? s : s.substr(at + 1);
    return hex.size() > 12 ? s.substr(0, s.size() - hex.size() + 12) : s;
}

// "git URL REF", "download URL", "registry REF", "debian SUITE": a pin for people.
std::string describe_pin(const recipe::Pin& p) {
    if (p.kind == "git") return "git " + p.field("url") + " " + p.field("ref");
    if (p.kind == "download") return "download " + p.field("url");
    if (p.kind == "registry") return "registry " + p.field("reference");
    return "debian " + p.field("suite");
}

// The recipe's fields of `want` that the lock's `have` holds otherwise.
void field_mismatches(const recipe::Pin& want, const recipe::Pin& have,
                      std::vector<std::string>& out) {
    for (const auto& [name, value] : want.fields) {
        std::string old = have.field(name);
        if (old != value)
            out.push_back(have.id() + ": " + describe_pin(have) + ": " + name + " " +
                          (old.empty() ? "(none)" : old) + " → " +
                          (value.empty() ? "(none)" : value));
    }
}

bool pins_match(const recipe::Pin& want, const recipe::Pin* have) {
    if (!have || have->kind != want.kind) return false;
    std::vector<std::string> diffs;
    field_mismatches(want, *have, diffs);
    return diffs.empty();
}

// The recipe's step behind a pin's id.
StepRef step_of(const recipe::Recipe& recipe, const recipe::Pin& pin) {
    for (const auto& stage : recipe.stages)
        if (stage.name == pin.stage) {
            if (pin.step == 0) return StepRef{&stage, std::nullopt};
            return StepRef{&stage, static_cast<std::size_t>(pin.step - 1)};
        }
    throw Error("no stage " + pin.stage);
}

bool named(const recipe::Pin& pin, const std::string& name) {
    if (name == pin.id() || name == pin.stage) return true;
    for (const char* f : {"url", "reference"})
        if (!pin.field(f).empty() && pin.field(f) == name) return true;
    return false;
}

class Resolver {
  public:
    Resolver(const recipe::Recipe& recipe, const fs::path& path, const BuildOptions& options,
             Progress& progress)
        : recipe_(recipe), path_(path), options_(options), progress_(progress) {}

    // The pin `want` (the recipe's side) with what it resolves to now.
    recipe::Pin resolve(recipe::Pin want) {
        auto ref = step_of(recipe_, want);
        if (want.kind == "git") resolve_git_pin(ref, want);
        if (want.kind == "registry") resolve_registry_pin(ref, want);
        if (want.kind == "debian") {
            auto base = debian_base(ref, want.id());
            want.packages = std::move(base.packages);
            if (!base.release_date.empty()) want.fields["release-date"] = base.release_date;
        }
        return want;
    }

    // A line when the kept pin's branch or tag names another commit upstream now (one
    // ls-remote), nullopt when it doesn't or can't move (a commit id, --offline).
    // A registry base's tag costs one manifest request the same way; a reference by digest
    // can't move and is not asked.
    std::optional<std::string> upstream_move(const recipe::Pin& kept) {
        if (options_.offline || (kept.kind != "git" && kept.kind != "registry"))
            return std::nullopt;
        auto ref = step_of(recipe_, kept);
        if (kept.kind == "git" && sources::is_commit_id(ref.step().git->ref)) return std::nullopt;
        std::string head = kept.id() + ": " + describe_pin(kept) + ": ";
        try {
            std::string pinned = kept.field(kept.kind == "git" ? "commit" : "digest");
            std::string now;
            if (kept.kind == "git") {
                now = peek_git(git_context(ref), *ref.step().git, ref.id()).commit;
                if (now != pinned && !has_commit(ref, kept))
                    return head + "the pinned commit " + short_hex(pinned) +
                           " is not in the repository (" + ref.step().git->ref + " is at " +
                           short_hex(now) + "); factory lock --update " + kept.id() + " " +
                           path_.string() + " pins that";
            } else {
                auto reg = base_registry_options(options_, &progress_);
                auto d = registry::peek_base(ref.stage->base.reference, recipe_platform(recipe_),
                                             reg.client);
                if (!d) return std::nullopt;
                now = d->digest;
            }
            if (now == pinned) return std::nullopt;
            return head + "moved upstream " + short_hex(pinned) + " → " + short_hex(now) +
                   ", kept (factory lock --update " + kept.id() + " " + path_.string() +
                   " moves it)";
        } catch (const Error& e) {
            // The pin is kept either way: a server down doesn't stop the lock.
            std::string why = e.what();
            if (why.starts_with(ref.id() + ": ")) why.erase(0, ref.id().size() + 2);
            return head + "cannot check upstream: " + why;
        }
    }

  private:
    // Whether the remote has the kept pin's commit: the store's mirror asked first, the remote
    // only when the mirror lacks it (a fetch of it by id, then of every ref, which leaves it in
    // the mirror for an --offline build). Throws Error when the remote can't be asked.
    bool has_commit(const StepRef& ref, const recipe::Pin& kept) {
        const auto& commit = kept.field("commit");
        try {
            fetch_git(git_context(ref), *ref.step().git, commit, kept.field("name"), ref.id());
            return true;
        } catch (const Error& e) {
            if (commit_not_found(e, commit)) return false;
            throw;
        }
    }

    SourceContext git_context(const StepRef& ref) {
        return source_context(
            options_, [this, id = ref.id()](std::string_view line) { progress_.output(id, line); });
    }

    void resolve_git_pin(const StepRef& ref, recipe::Pin& pin) {
        auto resolved = resolve_git(git_context(ref), *ref.step().git, ref.id());
        pin.fields["commit"] = resolved.commit;
        if (!resolved.name.empty()) pin.fields["name"] = resolved.name;
    }

    void resolve_registry_pin(const StepRef& ref, recipe::Pin& pin) {
        const auto& base = ref.stage->base;
        auto store =
            oci::Layout::create(options_.store_root, {.tmp_dir = options_.store_root / "tmp"});
        auto reg = base_registry_options(options_, &progress_);
        try {
            auto desc =
                registry::resolve_and_pull(base.reference, store, recipe_platform(recipe_), reg);
            pin.fields["digest"] = desc.digest;
        } catch (const Error& e) {
            throw Error(base.where.str() + ": base " + base.reference + ": " + e.what(), e.code());
        }
    }

    // A Debian base's packages are known once it is bootstrapped: from its layer in the store,
    // built first (the whole recipe, as `factory build` would) when the store lacks it.
    StoredDebian debian_base(const StepRef& ref, const std::string& id) {
        if (auto p = stored_debian(recipe_, ref, options_)) return *p;
        if (options_.offline)
            throw Error(id + ": offline: the debian base " + ref.stage->base.debian.suite +
                        " is not in the store");
        progress_.event("lock", id + ": building the recipe to learn its packages");
        build_recipe(path_, options_, progress_);
        if (auto p = stored_debian(recipe_, ref, options_)) return *p;
        throw Error(id + ": the debian base is not in the store after the build");
    }

    const recipe::Recipe& recipe_;
    const fs::path& path_;
    const BuildOptions& options_;
    Progress& progress_;
};

// What moved from `old` to `now`, for `factory lock`'s output.
void changes_of(const recipe::Pin* old, const recipe::Pin& now, std::vector<std::string>& out) {
    if (!old || old->kind != now.kind) {
        out.push_back(now.id() + ": " + describe_pin(now) + ": added");
        return;
    }
    for (const auto& [name, value] : now.fields) {
        std::string before = old->field(name);
        if (before == value) continue;
        bool resolved = is_resolved_field(now.kind, name);
        if (before.empty()) before = "(none)"; // a field older locks lack (release-date)
        out.push_back(now.id() + ": " + describe_pin(now) + ": " + (resolved ? "" : name + " ") +
                      (resolved ? short_hex(before) : before) + " → " +
                      (resolved ? short_hex(value) : value));
    }
    for (const auto& [name, version] : now.packages) {
        auto it = old->packages.find(name);
        std::string before = it == old->packages.end() ? "(none)" : it->second;
        if (before != version)
            out.push_back(now.id() + ": debian package " + name + ": " + before + " → " + version);
    }
    for (const auto& [name, version] : old->packages)
        if (!now.packages.count(name))
            out.push_back(now.id() + ": debian package " + name + ": " + version + " → (none)");
}

} // namespace

std::vector<recipe::Pin> pinnable_steps(const recipe::Recipe& recipe) {
    std::vector<recipe::Pin> out;
    for (const auto& stage : recipe.stages) {
        if (stage.base.kind == recipe::Base::Kind::registry ||
            stage.base.kind == recipe::Base::Kind::debian)
            out.push_back(base_pin(stage, recipe));
        for (std::size_t i = 0; i < stage.steps.size(); ++i) {
            const auto& step = stage.steps[i];
            recipe::Pin pin;
            pin.stage = stage.name;
            pin.step = static_cast<int>(i + 1);
            if (step.git) {
                pin.kind = "git";
                pin.fields["url"] = value_or_throw(sources::parse_remote_url(step.git->url)).url;
                pin.fields["ref"] = step.git->ref;
            } else if (step.download) {
                pin.kind = "download";
                pin.fields["url"] = sources::printable_url(step.download->url);
                pin.fields["sha256"] = step.download->sha256;
            } else {
                continue;
            }
            out.push_back(std::move(pin));
        }
    }
    std::sort(out.begin(), out.end(), recipe::pin_before);
    return out;
}

std::vector<std::string> lock_mismatches(const recipe::Recipe& recipe,
                                         const recipe::Lockfile& lock) {
    std::vector<std::string> out;
    std::set<std::string> wanted;
    for (const auto& want : pinnable_steps(recipe)) {
        wanted.insert(want.id());
        const auto* have = lock.find(want.id());
        if (!have)
            out.push_back(want.id() + ": " + describe_pin(want) + ": not in the lock file");
        else if (have->kind != want.kind)
            out.push_back(want.id() + ": the lock file pins a " + have->kind +
                          " step, the recipe has a " + want.kind + " step");
        else
            field_mismatches(want, *have, out);
    }
    for (const auto& have : lock.pins)
        if (!wanted.count(have.id()))
            out.push_back(have.id() + ": " + describe_pin(have) +
                          ": in the lock file, but the recipe has no such step");
    return out;
}

recipe::Lockfile load_lock_for(const recipe::Recipe& recipe) {
    // Named as the command line named the recipe, as in `factory lock`'s output.
    auto file = recipe::lockfile_path(recipe.given_file);
    auto lock = recipe::read_lockfile(file);
    auto mismatches = lock_mismatches(recipe, lock);
    if (mismatches.empty()) return lock;
    std::string message = file.string() + " does not match the recipe (factory lock " +
                          recipe.given_file.string() + " brings it up to date):";
    for (const auto& m : mismatches)
        message += "\n  " + m;
    throw Error(message);
}

const recipe::Pin* locked_pin(const StepEnv& env, const StepRef& step) {
    if (!env.lock) return nullptr;
    std::string id = step.stage->name + "." +
                     (step.is_base() ? std::string("base") : std::to_string(*step.index + 1));
    const auto* pin = env.lock->find(id);
    // load_lock_for checked that every pinnable step has its pin.
    if (!pin) throw Error(id + ": not in the lock file");
    return pin;
}

LockOutcome lock_recipe(const fs::path& path, const BuildOptions& options,
                        const LockRequest& request, Progress& progress) {
    recipe::LoadOptions lo;
    lo.args = options.args;
    lo.source_date_epoch = options.source_date_epoch;
    auto recipe = recipe::load(path, lo);
    LockOutcome outcome;
    outcome.file = recipe::lockfile_path(path);
    recipe::Lockfile old;
    std::error_code ec;
    if (fs::exists(outcome.file, ec)) old = recipe::read_lockfile(outcome.file);

    auto wanted = pinnable_steps(recipe);
    std::set<std::string> used_names;
    Resolver resolver(recipe, path, options, progress);
    recipe::Lockfile lock;
    for (auto& want : wanted) {
        const auto* have = old.find(want.id());
        bool move = !pins_match(want, have);
        if (request.update && request.update->empty()) move = true;
        if (request.update)
            for (const auto& name : *request.update)
                if (named(want, name)) {
                    move = true;
                    used_names.insert(name);
                }
        recipe::Pin now = move ? resolver.resolve(want) : *have;
        if (!move)
            if (auto line = resolver.upstream_move(now)) outcome.notices.push_back(*line);
        changes_of(have, now, outcome.changes);
        lock.put(std::move(now));
    }
    if (request.update)
        for (const auto& name : *request.update)
            if (!used_names.count(name))
                throw usage_error("--update " + name + ": no pinned step of " + path.string() +
                                  " is named so (STAGE.STEP, STAGE, or a URL or reference)");
    for (const auto& have : old.pins)
        if (!lock.find(have.id()))
            outcome.changes.push_back(have.id() + ": " + describe_pin(have) + ": removed");
    write_file_atomic(outcome.file, recipe::lockfile_text(lock, path.filename().string()));
    outcome.pins = lock.pins.size();
    return outcome;
}

} // namespace factory::builder
