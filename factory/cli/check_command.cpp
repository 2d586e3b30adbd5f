#include "factory/cli/check_command.hpp"

#include <cstdio>

#include "factory/builder/check.hpp"
#include "factory/util/error.hpp"

namespace factory::cli {

namespace {

std::string short12(const std::string& digest) {
    auto colon = digest.find(':');
    auto hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
    return hex.empty() ? "-" : hex.substr(0, 12);
}

// "content (4→12 bytes)", "mtime 0→1700000000", "mode 0644→0755".
std::string detail(const std::string& what, const exporter::FileInfo& a,
                   const exporter::FileInfo& b) {
    char buf[96];
    if (what == "content")
        std::snprintf(buf, sizeof buf, "content (%llu→%llu bytes)",
                      static_cast<unsigned long long>(a.size),
                      static_cast<unsigned long long>(b.size));
    else if (what == "mtime")
        std::snprintf(buf, sizeof buf, "mtime %lld→%lld", static_cast<long long>(a.mtime),
                      static_cast<long long>(b.mtime));
    else if (what == "mode")
        std::snprintf(buf, sizeof buf, "mode %04o→%04o", a.mode, b.mode);
    else if (what == "owner")
        std::snprintf(buf, sizeof buf, "owner %lld:%lld→%lld:%lld", static_cast<long long>(a.uid),
                      static_cast<long long>(a.gid), static_cast<long long>(b.uid),
                      static_cast<long long>(b.gid));
    else
        return what;
    return buf;
}

void print_files(const builder::CheckReport& r) {
    for (const auto& c : r.files) {
        std::string line = "    ";
        if (c.kind == exporter::ChangeKind::added) {
            line += "+ /" + c.path + "  only in the rebuild";
        } else if (c.kind == exporter::ChangeKind::removed) {
            line += "- /" + c.path + "  only in the store";
        } else {
            line += "~ /" + c.path + " ";
            for (const auto& w : c.what)
                line += " " + detail(w, *c.a, *c.b);
        }
        std::printf("%s\n", line.c_str());
    }
    if (!r.stored_blob.empty())
        std::printf("  the bytes: diffoscope %s %s\n", r.stored_blob.c_str(),
                    r.rebuilt_blob.c_str());
}

// One line per step, then the verdict; true when every step reproduced.
bool print_report(const std::string& recipe, const builder::CheckReport& r) {
    for (std::size_t i = 0; i < r.steps.size(); ++i) {
        const auto& s = r.steps[i];
        std::printf("%-8s %s  %s  %s  %s%s%s\n", s.same() ? "same" : "DIFFERS", s.id.c_str(),
                    s.where.c_str(), s.what.c_str(), short12(s.stored).c_str(),
                    s.same() ? "" : (" → " + short12(s.rebuilt)).c_str(),
                    s.built_first ? "  (built first)" : "");
        if (r.first_difference && *r.first_difference == i) print_files(r);
    }
    if (!r.first_difference) {
        std::printf("%s %s: %zu steps reproduced\n", r.image.c_str(), r.manifest.c_str(),
                    r.steps.size());
        return true;
    }
    const auto& first = r.steps[*r.first_difference];
    std::printf("%s %s: %zu of %zu steps reproduced\n", r.image.c_str(), r.manifest.c_str(),
                r.steps.size() - r.differing, r.steps.size());
    std::fflush(stdout);
    std::fprintf(stderr, "factory: error: %s: step %s (%s) is not reproducible: %s\n",
                 recipe.c_str(), first.id.c_str(), first.where.c_str(),
                 r.files.empty() ? "its result differs"
                                 : ("/" + r.files.front().path + " differs").c_str());
    return false;
}

} // namespace

int run_check(const std::vector<std::string>& recipes, const builder::BuildOptions& options,
              Progress& progress) {
    bool all_same = true;
    for (const auto& r : recipes) {
        auto report = builder::check_recipe(r, options, progress);
        if (!print_report(r, report)) all_same = false;
        std::fflush(stdout);
    }
    return all_same ? 0 : exit_not_reproducible;
}

} // namespace factory::cli
