#include "factory/util/image_names.hpp"
#include "factory/recipe/parser.hpp"

#include "factory/recipe/grammar.hpp"
#include "factory/recipe/nesting.hpp"
#include "factory/recipe/reader.hpp"
#include "factory/recipe/shell_reader.hpp"
#include "factory/recipe/stage_order.hpp"
#include "factory/recipe/stage_reader.hpp"
#include "factory/recipe/suggest.hpp"
#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace factory::recipe {

namespace {

namespace fs = std::filesystem;
using detail::quote;
using detail::quote_key;
using detail::Reader;

constexpr std::size_t max_recipe_size = 1u << 20;
// RFC 3339 (the config's "created") can't write a year past 9999.
constexpr std::int64_t max_epoch = 253402300799; // 9999-12-31T23:59:59Z
const std::string default_ignore_file = ".factoryignore";

Location file_location(const Reader& r, int line = 0, int column = 0) {
    return Location{r.file(), line, column};
}

std::string read_recipe_file(const fs::path& path) {
    auto fail = [&](int err) {
        return usage_error("cannot read recipe " + path.string() + ": " + errno_string(err));
    };
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw fail(errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw fail(errno);
    if (S_ISDIR(st.st_mode)) throw fail(EISDIR);
    // Not a FIFO or a device: reading one could block or never end.
    if (!S_ISREG(st.st_mode))
        throw usage_error("cannot read recipe " + path.string() + ": not a regular file");
    std::string text;
    char buf[65536];
    // Read one byte past the limit so that parse() reports the size.
    while (text.size() <= max_recipe_size) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw fail(errno);
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
}

toml::table parse_toml(std::string_view text, const Reader& r) {
    if (text.size() > max_recipe_size) r.fail(file_location(r), "recipe is larger than 1 MiB");
    if (auto at = detail::find_excess_nesting(text))
        r.fail(file_location(r, at->line, at->column), "tables and arrays nest more than " +
                                                           std::to_string(detail::max_nesting) +
                                                           " levels deep");
    try {
        return toml::parse(text, r.file());
    } catch (const toml::parse_error& e) {
        r.fail(r.at(e.source()), std::string(e.description()));
    }
}

// [args]: NAME = "default", then the --arg overrides. Values are literal.
std::map<std::string, std::string> read_args(Reader& r, const toml::table& root,
                                             const LoadOptions& options) {
    std::map<std::string, std::string> args;
    Location where = file_location(r);
    if (const auto* node = root.get("args")) {
        const auto& table = r.table(*node, "[args]");
        where = r.at(*node);
        for (auto&& [key, value] : detail::in_recipe_order(table)) {
            std::string name(key->str());
            if (!detail::is_arg_name(name))
                r.fail(*key, "[args]: invalid arg name " + quote_key(name) +
                                 " (letters, digits and _, not starting with a digit)");
            const auto* text = value->as_string();
            if (!text)
                r.fail(*value,
                       "[args] " + name + ": expected a string, got " + detail::type_name(*value));
            if (text->get().find('\0') != std::string::npos)
                r.fail(*value, "[args] " + name + ": contains a NUL character");
            args.emplace(name, text->get());
        }
    }
    for (const auto& [name, value] : options.args) {
        auto found = args.find(name);
        if (found == args.end()) {
            std::vector<std::string> declared;
            for (const auto& [declared_name, v] : args)
                declared.push_back(declared_name);
            r.fail(where, "--arg " + name + ": the recipe declares no arg " + name +
                              " (declared: " + detail::join_list(declared) + ")");
        }
        found->second = value;
    }
    return args;
}

// "linux/amd64" or "linux/arm/v7".
void read_platform(Reader& r, const toml::node& node, Recipe& recipe) {
    std::string label = "[image] platform";
    std::string platform = r.string(node, label);
    auto first = platform.find('/');
    auto second = first == std::string::npos ? first : platform.find('/', first + 1);
    std::string os = platform.substr(0, first);
    std::string arch =
        first == std::string::npos ? "" : platform.substr(first + 1, second - first - 1);
    std::string variant = second == std::string::npos ? "" : platform.substr(second + 1);
    if (first == std::string::npos || arch.empty() ||
        (second != std::string::npos && !detail::is_platform_variant(variant)))
        r.fail(node, label + ": invalid platform " + quote(platform) +
                         ": expected \"os/arch\" or \"os/arch/variant\" such as \"linux/amd64\"");
    if (os != "linux")
        r.fail(node, label + ": unsupported os " + quote(os) + ": only \"linux\" is supported");
    if (!detail::is_goarch(arch)) {
        std::string message = label + ": unknown architecture " + quote(arch) +
                              " (expected a GOARCH name such as \"amd64\" or \"arm64\")";
        if (auto goarch = detail::goarch_from_machine(arch))
            message += "; did you mean " +
                       quote("linux/" + goarch->arch +
                             (goarch->variant.empty() ? "" : "/" + goarch->variant)) +
                       "?";
        r.fail(node, message);
    }
    recipe.os = os;
    recipe.architecture = arch;
    recipe.variant = variant;
}

void detect_platform(const Reader& r, const LoadOptions& options, Recipe& recipe) {
    recipe.os = "linux";
    if (!options.host_architecture.empty()) {
        recipe.architecture = options.host_architecture;
        return;
    }
    struct utsname host {};
    if (::uname(&host) != 0)
        r.fail(file_location(r), "cannot detect the host's architecture: " + errno_string(errno) +
                                     "; set [image] platform");
    auto arch = detail::goarch_from_machine(host.machine);
    if (!arch)
        r.fail(file_location(r),
               "unknown host architecture " + quote(host.machine) + "; set [image] platform");
    recipe.architecture = arch->arch;
    recipe.variant = arch->variant;
}

std::vector<std::string> read_tags(Reader& r, const toml::node& node) {
    std::string label = "[image] tags";
    auto items = r.strings(node, label, "write tags = [\"1.0\"]");
    if (items.empty()) r.fail(node, label + ": needs at least one tag");
    std::vector<std::string> tags;
    std::set<std::string> seen;
    for (auto& item : items) {
        if (!is_image_tag(item.value))
            r.fail(item.where, label + ": invalid tag " + quote(item.value) +
                                   ": expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}");
        if (!seen.insert(item.value).second)
            r.fail(item.where, label + ": duplicate tag " + quote(item.value));
        tags.push_back(std::move(item.value));
    }
    return tags;
}

std::int64_t read_epoch(Reader& r, const toml::node* node, const LoadOptions& options) {
    std::int64_t epoch = 0;
    if (node) {
        epoch = r.integer(*node, "[image] epoch");
        if (epoch < 0 || epoch > max_epoch)
            r.fail(*node, "[image] epoch: " + std::to_string(epoch) + " is out of range (0 to " +
                              std::to_string(max_epoch) + ")");
    }
    if (const auto& text = options.source_date_epoch) {
        // Decimal digits only: no sign, space or "0x" (reproducible-builds.org's definition).
        if (text->empty() || text->find_first_not_of("0123456789") != std::string::npos)
            r.fail(file_location(r), "SOURCE_DATE_EPOCH=" + *text +
                                         ": expected a non-negative integer (seconds since 1970)");
        auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), epoch);
        if (ec != std::errc() || epoch > max_epoch)
            r.fail(file_location(r), "SOURCE_DATE_EPOCH " + *text + " is out of range (0 to " +
                                         std::to_string(max_epoch) + ")");
    }
    return epoch;
}

Compression read_compression(Reader& r, const toml::node& node) {
    std::string value = r.string(node, "[image] compression");
    if (value == "gzip") return Compression::gzip;
    if (value == "zstd") return Compression::zstd;
    r.fail(node, "[image] compression: unknown compression " + quote(value) +
                     " (expected \"gzip\" or \"zstd\")");
}

fs::path read_context(Reader& r, const toml::node* node) {
    if (!node) {
        std::error_code ec;
        if (!fs::is_directory(r.dir(), ec))
            r.fail(file_location(r),
                   "the recipe's directory " + r.dir().string() + " is not a directory");
        return r.dir();
    }
    std::string value = r.string(*node, "[image] context");
    fs::path context = (r.dir() / value).lexically_normal();
    std::error_code ec;
    if (value.empty() || !fs::is_directory(context, ec))
        r.fail(*node, "[image] context: " + quote(value) + " is not a directory (" +
                          quote(context.string()) + ")");
    return context;
}

// The ignore file is optional unless named: a named one that is missing is a typo.
std::string read_ignore(Reader& r, const toml::node* node, const fs::path& context) {
    std::error_code ec;
    if (!node)
        return fs::is_regular_file(context / default_ignore_file, ec) ? default_ignore_file : "";
    std::string value = r.string(*node, "[image] ignore");
    if (value.empty() || value.starts_with('/') || detail::has_dotdot(value))
        r.fail(*node, "[image] ignore: must be a path relative to the context: " + quote(value));
    if (!fs::is_regular_file(context / value, ec))
        r.fail(*node, "[image] ignore: " + quote(value) + " is not a file in the context (" +
                          quote((context / value).string()) + ")");
    return value;
}

// [image]; the output stage is checked once the stages are known.
void read_image(Reader& r, const toml::table& image, const LoadOptions& options, Recipe& recipe) {
    r.check_keys(image, "[image]",
                 {"name", "tags", "epoch", "compression", "platform", "stage", "context", "ignore",
                  "annotations"});
    const auto* name = image.get("name");
    if (!name) r.fail(image, "missing required key 'name' in [image]");
    recipe.name = r.string(*name, "[image] name");
    if (!detail::is_image_name(recipe.name))
        r.fail(*name, "[image] name: invalid image name " + quote(recipe.name) +
                          ": expected lowercase components ([a-z0-9] separated by '.', '_', "
                          "'__' or '-') joined by '/', after an optional registry host[:port]/");
    recipe.tags = {"latest"};
    if (const auto* tags = image.get("tags")) recipe.tags = read_tags(r, *tags);
    recipe.epoch = read_epoch(r, image.get("epoch"), options);
    if (const auto* compression = image.get("compression"))
        recipe.compression = read_compression(r, *compression);
    if (const auto* platform = image.get("platform"))
        read_platform(r, *platform, recipe);
    else
        detect_platform(r, options, recipe);
    recipe.context = read_context(r, image.get("context"));
    recipe.ignore_file = read_ignore(r, image.get("ignore"), recipe.context);
    if (const auto* annotations = image.get("annotations"))
        for (auto& entry : r.string_table(*annotations, "[image] annotations"))
            recipe.annotations.emplace(std::move(entry.key), std::move(entry.value));
}

// [contexts]: NAME = "path", a directory relative to the recipe's.
std::map<std::string, fs::path> read_contexts(Reader& r, const toml::table& root) {
    std::map<std::string, fs::path> contexts;
    const auto* node = root.get("contexts");
    if (!node) return contexts;
    for (auto&& [key, value] : detail::in_recipe_order(r.table(*node, "[contexts]"))) {
        std::string name(key->str());
        if (!detail::is_context_name(name))
            r.fail(*key, "[contexts]: invalid context name " + quote_key(name) +
                             " (expected [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 characters)");
        std::string label = "[contexts] " + name;
        std::string path = r.string(*value, label);
        fs::path dir = (r.dir() / path).lexically_normal();
        std::error_code ec;
        if (path.empty() || !fs::is_directory(dir, ec))
            r.fail(*value, label + ": " + quote(path) + " is not a directory (" +
                               quote(dir.string()) + ")");
        contexts.emplace(name, dir);
    }
    return contexts;
}

struct Declared {
    std::string name;
    const toml::table* table;
    detail::Placement placement;
    Location where;
};

// The stages in declaration order: "main" where its first key is, [stage.NAME] where its
// table starts (toml++ sorts keys, so the order comes from source positions).
std::vector<Declared> declare_stages(Reader& r, const toml::table& root) {
    std::vector<Declared> declared;
    std::optional<Location> main;
    if (root.contains("base") || root.contains("step")) {
        for (auto&& [key, node] : detail::in_recipe_order(root))
            if (key->str() == "base" || key->str() == "step" || key->str() == "config") {
                auto at = r.at(*key, *node);
                if (!main || detail::before(at, *main)) main = at;
            }
    }
    if (main) {
        declared.push_back(Declared{"main", &root, detail::Placement::top_level, *main});
    } else if (const auto* config = root.get("config")) {
        r.fail(*config, "[config] belongs to the top-level stage, which has no [base] or "
                        "[[step]]; put it in [stage.NAME.config]");
    }
    if (const auto* stages = root.get("stage")) {
        for (auto&& [key, node] : detail::in_recipe_order(r.table(*stages, "stage"))) {
            std::string name(key->str());
            if (!detail::is_stage_name(name))
                r.fail(*key, "invalid stage name " + quote_key(name) +
                                 " (expected [a-z0-9][a-z0-9_-]*, at most 64 characters)");
            if (main && name == "main")
                r.fail(*key, "stage name 'main' is reserved for the top-level stage ([base] "
                             "and [[step]])");
            const auto& table = r.table(*node, "[stage." + name + "]");
            declared.push_back(Declared{name, &table, detail::Placement::named, r.at(*key, *node)});
        }
    }
    std::stable_sort(declared.begin(), declared.end(), [](const Declared& a, const Declared& b) {
        return detail::before(a.where, b.where);
    });
    return declared;
}

std::string read_output_stage(Reader& r, const toml::table& image,
                              const std::vector<Declared>& declared,
                              const detail::StageScope& scope) {
    const auto* node = image.get("stage");
    if (!node) {
        // The top-level stage if there is one, else the last one written.
        bool top_level = std::any_of(declared.begin(), declared.end(), [](const Declared& d) {
            return d.placement == detail::Placement::top_level;
        });
        return top_level ? "main" : declared.back().name;
    }
    std::string name = r.string(*node, "[image] stage");
    detail::check_stage_ref(r, name, r.at(*node), "[image] stage", scope);
    return name;
}

} // namespace

Recipe parse(std::string_view text, const fs::path& file, const LoadOptions& options) {
    fs::path absolute = fs::absolute(file).lexically_normal();
    Reader r(file.string(), absolute.parent_path());
    toml::table root = parse_toml(text, r);
    r.check_keys(root, "", detail::top_level_keys);

    Recipe recipe;
    recipe.file = absolute;
    recipe.given_file = file;
    recipe.args = read_args(r, root, options);
    r.set_args(recipe.args);
    const auto* image_node = root.get("image");
    if (!image_node) r.fail(file_location(r, 1, 1), "missing required table [image]");
    const auto& image = r.table(*image_node, "[image]");
    read_image(r, image, options, recipe);
    recipe.contexts = read_contexts(r, root);

    auto declared = declare_stages(r, root);
    if (declared.empty())
        r.fail(file_location(r, 1, 1),
               "the recipe has no stages: add [base] and [[step]], or [stage.NAME] tables");
    detail::StageScope scope;
    for (const auto& d : declared)
        scope.stages.push_back(d.name);
    scope.stage_set.insert(scope.stages.begin(), scope.stages.end());
    scope.contexts = recipe.contexts;
    scope.platform = {recipe.architecture, recipe.variant};
    std::vector<Stage> stages;
    for (const auto& d : declared)
        stages.push_back(detail::read_stage(r, *d.table, d.name, d.placement, d.where, scope));
    recipe.output_stage = read_output_stage(r, image, declared, scope);
    recipe.stages = detail::order_stages(std::move(stages), r);
    for (auto&& [key, node] : root)
        if (key.str() == "shell")
            recipe.shell = detail::read_shell_config(r, node, r.at(key, node));
    return recipe;
}

Recipe load(const fs::path& file, const LoadOptions& options) {
    return parse(read_recipe_file(file), file, options);
}

} // namespace factory::recipe
