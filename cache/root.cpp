#include "cache/root.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include "factory/util/error.hpp"

namespace factory::cache {

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

} // namespace

std::filesystem::path store_root(const std::string& explicit_root) {
    namespace fs = std::filesystem;
    if (!explicit_root.empty()) return fs::absolute(explicit_root);
    if (auto v = env("FACTORY_CACHE"); !v.empty()) return fs::absolute(v);
    if (auto v = env("XDG_CACHE_HOME"); !v.empty()) return fs::absolute(fs::path(v) / "factory");
    auto home = env("HOME");
    if (home.empty())
        if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) home = pw->pw_dir;
    if (home.empty())
        throw Error("cannot locate the store: set --cache, FACTORY_CACHE or HOME", ExitCode::usage);
    return fs::path(home) / ".cache" / "factory";
}

} // namespace factory::cache
