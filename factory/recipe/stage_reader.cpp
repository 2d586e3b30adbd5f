#include "factory/util/image_names.hpp"
#include "factory/recipe/stage_reader.hpp"

#include "factory/recipe/config_reader.hpp"
#include "factory/recipe/debian_reader.hpp"
#include "factory/recipe/grammar.hpp"
#include "factory/recipe/run_reader.hpp"
#include "factory/recipe/source_reader.hpp"
#include "factory/recipe/suggest.hpp"
#include "factory/util/pattern.hpp"

#include <algorithm>
#include <optional>

namespace factory::recipe::detail {

namespace {

namespace fs = std::filesystem;

// The names a stage's parts go by in messages: "[base]" / "[stage.x.base]", …
struct Labels {
    explicit Labels(const std::string& stage, bool top_level) {
        std::string prefix = top_level ? "" : "stage." + stage + ".";
        base_table = "[" + prefix + "base]";
        step_table = "[[" + prefix + "step]]";
        config_table = "[" + prefix + "config]";
        owner = top_level ? "" : "[stage." + stage + "]";
    }
    std::string base_table, step_table, config_table;
    std::string owner; // the table holding base/step/config; "" for the top level
};

const std::vector<std::string> step_kinds = {"copy", "run", "git", "download", "deps"};

bool contains(const std::vector<std::string>& list, std::string_view item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

Base make_base(Base::Kind kind, const Location& where) {
    Base base;
    base.kind = kind;
    base.where = where;
    return base;
}

Base stage_base(const std::string& stage, const Location& where) {
    Base base = make_base(Base::Kind::stage, where);
    base.stage = stage;
    return base;
}

// "oci:DIR[:TAG]" / "oci-archive:FILE[:TAG]": as skopeo's oci transports do, the path ends
// at the first ':', so it can't hold one.
Base read_layout_ref(Reader& r, Base::Kind kind, std::string_view rest, const Location& where,
                     const std::string& label, std::string_view what) {
    Base base = make_base(kind, where);
    auto colon = rest.find(':');
    auto path = rest.substr(0, colon);
    if (path.empty()) r.fail(where, label + ": " + std::string(what) + " path is empty");
    if (colon != std::string_view::npos) {
        base.tag = rest.substr(colon + 1);
        if (!is_ref_name(base.tag))
            r.fail(where, label + ": invalid tag " + quote(base.tag) +
                              " (expected an image-spec ref.name such as \"1.0\")");
    }
    base.path = (r.dir() / fs::path(path)).lexically_normal();
    return base;
}

// "HOST/REPO[:TAG][@sha256:<64 hex>]" with an explicit registry host (a name without one would
// silently mean Docker Hub): the reference without "docker://", or nullopt.
std::optional<std::string> registry_reference(std::string_view ref) {
    if (ref.starts_with("docker://")) ref.remove_prefix(9);
    std::string_view name = ref, tag, digest;
    if (auto at = name.find('@'); at != std::string_view::npos) {
        digest = name.substr(at + 1);
        name = name.substr(0, at);
        if (digest.size() != 71 || !digest.starts_with("sha256:") ||
            digest.substr(7).find_first_not_of("0123456789abcdef") != std::string_view::npos)
            return std::nullopt;
    }
    auto slash = name.find('/');
    auto colon = name.rfind(':');
    if (colon != std::string_view::npos &&
        (slash == std::string_view::npos || colon > name.rfind('/'))) {
        tag = name.substr(colon + 1);
        name = name.substr(0, colon);
        if (!is_image_tag(tag)) return std::nullopt;
    }
    if (slash == std::string_view::npos) return std::nullopt;
    auto host = name.substr(0, slash);
    bool has_host = host.find_first_of(".:") != std::string_view::npos || host == "localhost";
    if (!has_host || !is_image_name(name)) return std::nullopt;
    return std::string(ref);
}

Base read_image_ref(Reader& r, const std::string& image, const Location& where,
                    const std::string& label, const StageScope& scope) {
    std::string_view ref = image;
    if (ref == "scratch") return make_base(Base::Kind::scratch, where);
    if (ref.starts_with("oci:"))
        return read_layout_ref(r, Base::Kind::oci_layout, ref.substr(4), where, label,
                               "oci layout");
    if (ref.starts_with("oci-archive:"))
        return read_layout_ref(r, Base::Kind::oci_archive, ref.substr(12), where, label,
                               "oci archive");
    if (ref.starts_with("stage:")) {
        std::string stage(ref.substr(6));
        check_stage_ref(r, stage, where, label, scope);
        return stage_base(stage, where);
    }
    if (auto reference = registry_reference(ref)) {
        Base base = make_base(Base::Kind::registry, where);
        base.reference = *reference;
        return base;
    }
    r.fail(where, label + ": unsupported base image " + quote(image) +
                      ": expected \"scratch\", \"oci:DIR[:TAG]\", \"oci-archive:FILE[:TAG]\", "
                      "\"stage:NAME\" or a registry reference HOST/REPO[:TAG][@sha256:DIGEST]");
}

Base read_base(Reader& r, const toml::node* node, const Labels& labels, const Location& stage,
               const StageScope& scope) {
    if (!node) return make_base(Base::Kind::scratch, stage);
    std::string value_label = key_label(labels.owner, "base");
    if (node->is_string())
        return read_image_ref(r, r.string(*node, value_label), r.at(*node), value_label, scope);
    const auto* table = node->as_table();
    if (!table)
        r.fail(*node, value_label + ": expected a string or a table, got " + type_name(*node));
    r.check_keys(*table, labels.base_table, {"image", "stage", "debian"});
    const auto* image = table->get("image");
    const auto* stage_name = table->get("stage");
    const auto* debian = table->get("debian");
    std::vector<std::string> kinds;
    for (auto&& [key, value] : *table) // toml++ order: debian, image, stage
        kinds.emplace_back(quote_key(key.str()));
    if (kinds.size() == 2)
        r.fail(*table,
               labels.base_table + ": has both " + kinds[0] + " and " + kinds[1] + "; use one");
    if (kinds.size() == 3)
        r.fail(*table, labels.base_table + ": has " + kinds[0] + ", " + kinds[1] + " and " +
                           kinds[2] + "; use one");
    if (debian) {
        Base base = make_base(Base::Kind::debian, r.at(*debian));
        base.debian = read_debian(r, *debian, labels.base_table + " debian", scope.platform);
        return base;
    }
    if (image) {
        std::string label = labels.base_table + " image";
        return read_image_ref(r, r.string(*image, label), r.at(*image), label, scope);
    }
    if (stage_name) {
        std::string label = labels.base_table + " stage";
        std::string name = r.string(*stage_name, label);
        check_stage_ref(r, name, r.at(*stage_name), label, scope);
        return stage_base(name, r.at(*stage_name));
    }
    r.fail(*table, labels.base_table + ": needs 'image', 'stage' or 'debian'");
}

void check_src(const Reader& r, Located& src, const std::string& label, bool from_stage) {
    if (src.value.empty()) r.fail(src.where, label + ": src must not be empty");
    if (has_dotdot(src.value) || (!from_stage && src.value.front() == '/'))
        r.fail(src.where, label + ": src must be relative to the " +
                              std::string(from_stage ? "stage's root" : "context") + ": " +
                              quote(src.value));
    // From a stage, "/usr/bin/x" means the stage's /usr/bin/x, as in COPY --from.
    if (from_stage) {
        auto first = src.value.find_first_not_of('/');
        src.value = first == std::string::npos ? "." : src.value.substr(first);
    }
    // The build matches with util/pattern.hpp; a malformed pattern would match nothing.
    if (auto valid = validate_pattern(src.value); !valid)
        r.fail(src.where, label + ": " + valid.error());
}

std::vector<Located> read_srcs(Reader& r, const toml::node& node, const std::string& label) {
    if (node.is_string()) return {Located{r.string(node, label), r.at(node)}};
    if (!node.is_array())
        r.fail(node, label + ": expected a string or an array of strings, got " + type_name(node));
    auto srcs = r.strings(node, label);
    if (srcs.empty()) r.fail(node, label + ": needs at least one path");
    return srcs;
}

std::optional<unsigned> read_mode(Reader& r, const toml::node& node, const std::string& label) {
    // Only strings: a TOML integer 755 is decimal (0o1363), the classic chmod trap.
    std::string mode =
        r.string(node, label, "write the mode in quotes, as octal digits: mode = \"0755\"");
    bool octal = !mode.empty() && mode.size() <= 4 &&
                 std::all_of(mode.begin(), mode.end(), [](char c) { return c >= '0' && c <= '7'; });
    if (!octal)
        r.fail(node, label + ": invalid mode " + quote(mode) +
                         ": expected up to 4 octal digits such as \"0755\"");
    return static_cast<unsigned>(std::stoul(mode, nullptr, 8));
}

std::uint32_t read_id(Reader& r, const toml::node& node, const std::string& label) {
    // Ids of 2^31 and above wrap to negative numbers in some runtimes (containerd
    // CVE-2024-40635 ran such a container as root).
    constexpr std::int64_t max_id = 0x7fffffff;
    std::int64_t id = r.integer(node, label);
    if (id < 0 || id > max_id)
        r.fail(node, label + ": " + std::to_string(id) + " is out of range (0 to " +
                         std::to_string(max_id) + ")");
    return static_cast<std::uint32_t>(id);
}

void read_copy_source(Reader& r, const toml::table& t, const std::string& label,
                      const StageScope& scope, CopyItem& item) {
    const auto* from = t.get("from");
    const auto* context = t.get("context");
    if (from && context)
        r.fail(*context, label + ": 'from' and 'context' are exclusive: a copy reads another "
                                 "stage or a context");
    if (from) {
        item.from_stage = r.string(*from, label + ".from");
        check_stage_ref(r, item.from_stage, r.at(*from), label + ".from", scope);
    }
    if (context) {
        item.context = r.string(*context, label + ".context");
        if (!scope.contexts.contains(item.context)) {
            std::vector<std::string> names;
            for (const auto& [name, path] : scope.contexts)
                names.push_back(name);
            std::string message = label + ".context: unknown context " + quote_key(item.context);
            if (auto guess = closest(item.context, names); !guess.empty())
                message += "; did you mean " + quote_key(guess) + "?";
            else
                message += " (declared in [contexts]: " + join_list(names) + ")";
            r.fail(*context, message);
        }
    }
}

CopyItem read_copy_item(Reader& r, const toml::table& t, const std::string& label,
                        const StageScope& scope) {
    r.check_keys(t, label, {"src", "dest", "mode", "uid", "gid", "from", "context"});
    CopyItem item;
    item.where = r.at(t);
    read_copy_source(r, t, label, scope, item);
    const auto* src = t.get("src");
    if (!src) r.fail(t, "missing required key 'src' in " + label);
    const auto* dest = t.get("dest");
    if (!dest) r.fail(t, "missing required key 'dest' in " + label);

    auto srcs = read_srcs(r, *src, label + ".src");
    for (auto& s : srcs) {
        check_src(r, s, label + ".src", !item.from_stage.empty());
        item.src.push_back(std::move(s.value));
    }
    item.dest = r.string(*dest, label + ".dest");
    if (!item.dest.starts_with('/'))
        r.fail(*dest, label + ".dest: dest must be an absolute path: " + quote(item.dest));
    if (has_dotdot(item.dest))
        r.fail(*dest, label + ".dest: dest must not contain '..': " + quote(item.dest));
    if (item.src.size() > 1 && !item.dest.ends_with('/'))
        r.fail(*dest, label +
                          ".dest: copying several sources needs a directory dest ending "
                          "in '/': " +
                          quote(item.dest));
    if (const auto* mode = t.get("mode")) item.mode = read_mode(r, *mode, label + ".mode");
    if (const auto* uid = t.get("uid")) item.uid = read_id(r, *uid, label + ".uid");
    if (const auto* gid = t.get("gid")) item.gid = read_id(r, *gid, label + ".gid");
    return item;
}

std::vector<CopyItem> read_copy(Reader& r, const toml::node& node, const std::string& label,
                                const StageScope& scope) {
    if (const auto* table = node.as_table()) return {read_copy_item(r, *table, label, scope)};
    const auto* array = node.as_array();
    if (!array)
        r.fail(node, label + ": expected a table or an array of tables, got " + type_name(node));
    if (array->empty()) r.fail(node, label + ": needs at least one item");
    std::vector<CopyItem> items;
    for (const auto& element : *array)
        items.push_back(read_copy_item(r, r.table(element, label), label, scope));
    return items;
}

// A step has exactly one kind key; the RUN options belong to `run` only.
Step read_step(Reader& r, const toml::table& t, const std::string& label, const StageScope& scope) {
    std::vector<std::string> known = step_kinds;
    known.insert(known.end(), run_options().begin(), run_options().end());
    r.check_keys(t, label, known);
    const toml::key* kind = nullptr;
    for (auto&& [key, value] : in_recipe_order(t)) {
        if (!contains(step_kinds, key->str())) continue;
        if (kind)
            r.fail(*key, label + ": has both " + quote_key(kind->str()) + " and " +
                             quote_key(key->str()) + "; a step does one thing");
        kind = key;
    }
    if (!kind) r.fail(t, label + ": needs one of copy, run, git, deps, download");
    Step step;
    step.where = r.at(t);
    if (kind->str() == "run") {
        step.kind = StepKind::run;
        step.run = read_run(r, t, label);
        return step;
    }
    for (auto&& [key, value] : in_recipe_order(t))
        if (contains(run_options(), key->str()))
            r.fail(
                *key,
                "step option " + quote_key(key->str()) + " applies to run steps only" +
                    (kind->str() == "deps" ? " (a deps step takes them inside deps = { … })" : ""));
    const auto& value = *t.get(kind->str());
    if (kind->str() == "git") {
        step.kind = StepKind::git;
        step.git = read_git(r, value, label + " git");
        return step;
    }
    if (kind->str() == "download") {
        step.kind = StepKind::download;
        step.download = read_download(r, value, label + " download");
        return step;
    }
    if (kind->str() == "deps") {
        step.kind = StepKind::deps;
        step.deps = read_deps(r, value, label + " deps");
        return step;
    }
    step.kind = StepKind::copy;
    step.copy = read_copy(r, *t.get("copy"), label + " copy", scope);
    return step;
}

std::vector<Step> read_steps(Reader& r, const toml::node* node, const Labels& labels,
                             const StageScope& scope) {
    if (!node) return {};
    std::string hint = "write each step as a " + labels.step_table + " table";
    const auto& array = r.array(*node, key_label(labels.owner, "step"), hint);
    std::vector<Step> steps;
    for (const auto& element : array) {
        if (!element.is_table())
            r.fail(element, labels.step_table + ": expected a table, got " + type_name(element));
        steps.push_back(read_step(r, *element.as_table(), labels.step_table, scope));
    }
    return steps;
}

} // namespace

void check_stage_ref(const Reader& reader, const std::string& name, const Location& where,
                     const std::string& label, const StageScope& scope) {
    if (scope.stage_set.contains(name)) return;
    std::string message = label + ": unknown stage " + quote_key(name);
    if (auto guess = closest(name, scope.stages); !guess.empty())
        message += "; did you mean " + quote_key(guess) + "?";
    else
        message += " (declared: " + join_list(scope.stages) + ")";
    reader.fail(where, message);
}

Stage read_stage(Reader& reader, const toml::table& table, const std::string& name,
                 Placement placement, const Location& where, const StageScope& scope) {
    Labels labels(name, placement == Placement::top_level);
    if (placement == Placement::named)
        reader.check_keys(table, labels.owner, {"base", "step", "config"});
    Stage stage;
    stage.name = name;
    stage.where = where;
    stage.base = read_base(reader, table.get("base"), labels, where, scope);
    stage.steps = read_steps(reader, table.get("step"), labels, scope);
    if (const auto* config = table.get("config")) {
        stage.config =
            read_config(reader, reader.table(*config, labels.config_table), labels.config_table);
        stage.has_config = true;
    }
    return stage;
}

} // namespace factory::recipe::detail
