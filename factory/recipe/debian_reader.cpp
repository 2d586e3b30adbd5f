#include "factory/recipe/debian_reader.hpp"

#include "factory/recipe/grammar.hpp"
#include "factory/recipe/suggest.hpp"

#include <algorithm>
#include <set>

namespace factory::recipe::detail {

namespace {

std::string platform_text(const Platform& p) {
    return "linux/" + p.arch + (p.variant.empty() ? "" : "/" + p.variant);
}

std::string read_variant(Reader& r, const toml::node& node, const std::string& label) {
    std::string variant = r.string(node, label);
    const auto& known = debian_variants();
    if (std::find(known.begin(), known.end(), variant) != known.end()) return variant;
    std::string message =
        label + ": unknown variant " + quote(variant) + " (expected " + join_list(known) + ")";
    if (auto guess = closest(variant, known); !guess.empty())
        message += "; did you mean " + quote(guess) + "?";
    r.fail(node, message);
}

std::vector<std::string> read_include(Reader& r, const toml::node& node, const std::string& label) {
    std::set<std::string> packages; // sorted, repeats dropped: the set is what counts
    for (auto& item : r.strings(node, label, "write include = [\"ca-certificates\"]")) {
        if (!is_debian_package(item.value))
            r.fail(item.where, label + ": invalid package name " + quote(item.value) +
                                   ": expected [a-z0-9][a-z0-9+.-]+ (Debian policy 5.6.1)");
        packages.insert(std::move(item.value));
    }
    return {packages.begin(), packages.end()};
}

std::vector<std::string> read_components(Reader& r, const toml::node& node,
                                         const std::string& label) {
    std::vector<std::string> components;
    std::set<std::string> seen;
    for (auto& item : r.strings(node, label, "write components = [\"main\", \"contrib\"]")) {
        if (!is_debian_component(item.value))
            r.fail(item.where, label + ": invalid component " + quote(item.value) +
                                   ": expected [a-z0-9][a-z0-9-]* such as \"main\"");
        if (!seen.insert(item.value).second)
            r.fail(item.where, label + ": duplicate component " + quote(item.value));
        components.push_back(std::move(item.value));
    }
    if (components.empty()) r.fail(node, label + ": needs at least one component");
    return components;
}

std::string read_mirror(Reader& r, const toml::node& node, const std::string& label) {
    std::string mirror = r.string(node, label);
    if (!is_http_url(mirror))
        r.fail(node, label + ": invalid mirror " + quote(mirror) +
                         ": expected an http:// or https:// URL such as "
                         "\"http://deb.debian.org/debian\"");
    return mirror;
}

// Written: a Debian architecture that must be the image's (an image labelled linux/amd64
// holding arm64 binaries is a mistake, not a feature). Unset: the image's, translated.
std::string read_architecture(Reader& r, const toml::table& t, const std::string& label,
                              const Platform& platform) {
    auto expected = debian_arch_from_goarch(platform.arch, platform.variant);
    const auto* node = t.get("architecture");
    if (!node) {
        if (!expected)
            r.fail(t, label + ": the image's platform " + platform_text(platform) +
                          " has no Debian architecture; set [image] platform");
        return *expected;
    }
    std::string arch = r.string(*node, label + ".architecture");
    const auto& known = debian_architectures();
    if (std::find(known.begin(), known.end(), arch) == known.end()) {
        std::string message = label + ".architecture: unknown architecture " + quote(arch) +
                              " (expected a Debian architecture such as \"amd64\" or \"arm64\")";
        if (auto goarch = goarch_from_machine(arch))
            if (auto debian = debian_arch_from_goarch(goarch->arch, goarch->variant))
                message += "; did you mean " + quote(*debian) + "?";
        r.fail(*node, message);
    }
    if (!expected || *expected != arch)
        r.fail(*node, label + ".architecture: " + quote(arch) + " is not the image's platform " +
                          platform_text(platform) + " (set [image] platform to change it)");
    return arch;
}

} // namespace

DebianBase read_debian(Reader& r, const toml::node& node, const std::string& label,
                       const Platform& platform) {
    const auto& t = r.table(node, label);
    r.check_keys(t, label, {"suite", "variant", "include", "mirror", "components", "architecture"});
    DebianBase debian;
    const auto* suite = t.get("suite");
    if (!suite) r.fail(node, "missing required key 'suite' in " + label);
    debian.suite = r.string(*suite, label + ".suite");
    if (!is_debian_suite(debian.suite))
        r.fail(*suite, label + ".suite: invalid suite " + quote(debian.suite) +
                           ": expected [a-z0-9][a-z0-9-]* such as \"bookworm\" or \"stable\"");
    if (const auto* variant = t.get("variant"))
        debian.variant = read_variant(r, *variant, label + ".variant");
    if (const auto* include = t.get("include"))
        debian.include = read_include(r, *include, label + ".include");
    if (const auto* mirror = t.get("mirror"))
        debian.mirror = read_mirror(r, *mirror, label + ".mirror");
    if (const auto* components = t.get("components"))
        debian.components = read_components(r, *components, label + ".components");
    debian.architecture = read_architecture(r, t, label, platform);
    return debian;
}

} // namespace factory::recipe::detail
