#include "factory/oci/image_config.hpp"

#include <algorithm>
#include <set>

#include "factory/oci/descriptor_internal.hpp"
#include "factory/oci/digest.hpp"

namespace factory::oci {

using namespace detail;

namespace {

// Field order of specs-go/v1 (image-spec v1.1.1): Image with Platform embedded, ImageConfig,
// RootFS, History.
constexpr std::string_view image_fields[] = {"created",    "author",      "architecture", "os",
                                             "os.version", "os.features", "variant",      "config",
                                             "rootfs",     "history"};
constexpr std::string_view exec_fields[] = {
    "User",    "ExposedPorts", "Env",    "Entrypoint", "Cmd",
    "Volumes", "WorkingDir",   "Labels", "StopSignal", "ArgsEscaped"};
constexpr std::string_view rootfs_fields[] = {"type", "diff_ids"};
constexpr std::string_view history_fields[] = {"created", "created_by", "author", "comment",
                                               "empty_layer"};

template <std::size_t N> bool known(const std::string_view (&fields)[N], std::string_view k) {
    return std::find(std::begin(fields), std::end(fields), k) != std::end(fields);
}

// Go omitempty: false, 0, "", and empty arrays/maps are omitted; so is null (nil pointer/slice).
bool is_empty(const Json& v) {
    if (v.is_null()) return true;
    if (v.is_string()) return v.get_ref<const std::string&>().empty();
    if (v.is_boolean()) return !v.get<bool>();
    if (v.is_array() || v.is_object()) return v.empty();
    if (v.is_number_integer()) return v.get<std::int64_t>() == 0;
    if (v.is_number_unsigned()) return v.get<std::uint64_t>() == 0;
    if (v.is_number_float()) return v.get<double>() == 0;
    return false;
}

// A value of unknown meaning, as Go would write it after decoding into interface{}: objects get
// sorted keys, recursively.
Json canonical_unknown(const Json& v) {
    if (v.is_array()) {
        Json out = Json::array();
        for (const auto& e : v)
            out.push_back(canonical_unknown(e));
        return out;
    }
    if (!v.is_object()) return v;
    std::vector<std::string> keys;
    for (const auto& [k, _] : v.items())
        keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    Json out = Json::object();
    for (const auto& k : keys)
        out[k] = canonical_unknown(v.at(k));
    return out;
}

// Appends the members of `from` that are not in `fields`, sorted by key.
template <std::size_t N>
void append_unknown(Json& out, const Json& from, const std::string_view (&fields)[N]) {
    std::vector<std::string> keys;
    for (const auto& [k, _] : from.items())
        if (!known(fields, k)) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys)
        out[k] = canonical_unknown(from.at(k));
}

// map[string]struct{} → {"k":{}} with sorted keys.
Json canonical_set(const Json& v) {
    std::set<std::string> keys;
    for (const auto& [k, _] : v.items())
        keys.insert(k);
    Json out = Json::object();
    for (const auto& k : keys)
        out[k] = Json::object();
    return out;
}

Json canonical_exec(const Json* c) {
    Json out = Json::object();
    if (!c || !c->is_object()) return out;
    for (auto f : exec_fields) {
        auto it = c->find(f);
        if (it == c->end() || is_empty(*it)) continue;
        if (f == "ExposedPorts" || f == "Volumes")
            out[std::string(f)] = canonical_set(*it);
        else if (f == "Labels")
            out[std::string(f)] = canonical_unknown(*it);
        else
            out[std::string(f)] = *it;
    }
    append_unknown(out, *c, exec_fields);
    return out;
}

Json canonical_rootfs(const Json* r) {
    if (r && !r->is_object()) r = nullptr;
    Json out = Json::object();
    auto type = r ? member(*r, "type") : nullptr;
    out["type"] = type ? *type : Json("layers");
    auto ids = r ? member(*r, "diff_ids") : nullptr;
    out["diff_ids"] = ids ? *ids : Json::array();
    if (r) append_unknown(out, *r, rootfs_fields);
    return out;
}

// Go decodes "created" into a time.Time and writes it back with RFC3339Nano: fraction without
// trailing zeros, "Z" for a zero offset, upper-case T.
Json go_time(const Json& v) {
    if (!v.is_string()) return v;
    std::string s = v.get<std::string>();
    if (s.size() < 20) return v;
    if (s[10] == 't') s[10] = 'T';
    if (s.back() == 'z') s.back() = 'Z';
    if (s.ends_with("+00:00") || s.ends_with("-00:00")) s.replace(s.size() - 6, 6, "Z");
    if (s.size() > 19 && s[19] == '.') {
        auto end = s.find_first_not_of("0123456789", 20);
        if (end == std::string::npos) return v;
        auto frac_end = end;
        if (frac_end - 20 > 9) { // Go keeps nanoseconds only
            s.erase(29, frac_end - 29);
            frac_end = 29;
        }
        auto last = frac_end;
        while (last > 20 && s[last - 1] == '0')
            --last;
        s.erase(last == 20 ? 19 : last, frac_end - (last == 20 ? 19 : last));
    }
    return s;
}

Json canonical_history(const Json& h) {
    Json out = Json::object();
    for (auto f : history_fields) {
        auto it = h.find(f);
        if (it == h.end() || is_empty(*it)) continue;
        out[std::string(f)] = f == "created" ? go_time(*it) : *it;
    }
    append_unknown(out, h, history_fields);
    return out;
}

bool looks_like_rfc3339(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM); the calendar itself is not checked.
    auto digits = [&](std::size_t pos, std::size_t n) {
        if (pos + n > s.size()) return false;
        for (std::size_t i = pos; i < pos + n; ++i)
            if (s[i] < '0' || s[i] > '9') return false;
        return true;
    };
    if (!(digits(0, 4) && s.size() > 19 && s[4] == '-' && digits(5, 2) && s[7] == '-' &&
          digits(8, 2) && (s[10] == 'T' || s[10] == 't') && digits(11, 2) && s[13] == ':' &&
          digits(14, 2) && s[16] == ':' && digits(17, 2)))
        return false;
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        ++i;
        std::size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9')
            ++i;
        if (i == start) return false;
    }
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == s.size();
    return i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && digits(i + 1, 2) &&
           s[i + 3] == ':' && digits(i + 4, 2);
}

void check_time(const Json& obj, std::string_view key, const std::string& path) {
    if (auto t = opt_string(obj, key, path); t && !looks_like_rfc3339(*t))
        fail(join(path, key), quote(*t) + " is not an RFC 3339 time");
}

void validate_exec(const Json& c) {
    const std::string p = "config";
    require_object(c, p);
    opt_string(c, "User", p);
    opt_set(c, "ExposedPorts", p);
    opt_string_array(c, "Env", p);
    opt_string_array(c, "Entrypoint", p);
    opt_string_array(c, "Cmd", p);
    opt_set(c, "Volumes", p);
    opt_string(c, "WorkingDir", p);
    opt_string_map(c, "Labels", p);
    opt_string(c, "StopSignal", p);
    opt_bool(c, "ArgsEscaped", p);
}

std::size_t validate_rootfs(const Json& j) {
    auto r = member(j, "rootfs");
    if (!r) fail("rootfs", "is required");
    require_object(*r, "rootfs");
    auto type = req_string(*r, "type", "rootfs");
    if (type != "layers") fail("rootfs.type", "must be \"layers\", not " + quote(type));
    auto ids = opt_string_array(*r, "diff_ids", "rootfs");
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (auto d = Digest::parse(ids[i]); !d) fail(join("rootfs.diff_ids", i), d.error());
    return ids.size();
}

void validate_history(const Json& j) {
    auto h = member(j, "history");
    if (!h) return;
    if (!h->is_array()) fail("history", "must be an array");
    for (std::size_t i = 0; i < h->size(); ++i) {
        auto p = join("history", i);
        const auto& e = require_object((*h)[i], p);
        check_time(e, "created", p);
        opt_string(e, "created_by", p);
        opt_string(e, "author", p);
        opt_string(e, "comment", p);
        opt_bool(e, "empty_layer", p);
    }
}

std::vector<std::string> strings_at(const Json* obj, std::string_view key) {
    if (!obj) return {};
    auto v = member(*obj, key);
    if (!v || !v->is_array()) return {};
    std::vector<std::string> out;
    for (const auto& e : *v)
        if (e.is_string()) out.push_back(e.get<std::string>());
    return out;
}

std::string string_at(const Json* obj, std::string_view key) {
    if (!obj) return {};
    auto v = member(*obj, key);
    return v && v->is_string() ? v->get<std::string>() : std::string();
}

std::vector<std::string> keys_at(const Json* obj, std::string_view key) {
    std::vector<std::string> out;
    if (!obj) return out;
    auto v = member(*obj, key);
    if (!v || !v->is_object()) return out;
    for (const auto& [k, _] : v->items())
        out.push_back(k);
    std::sort(out.begin(), out.end());
    return out;
}

void set_or_erase(Json& obj, const std::string& key, Json value) {
    if (is_empty(value))
        obj.erase(key);
    else
        obj[key] = std::move(value);
}

} // namespace

ImageConfig::ImageConfig(const Platform& p) : doc_(Json::object()) {
    set_platform(p);
    doc_["config"] = Json::object();
    doc_["rootfs"] = Json{{"type", "layers"}, {"diff_ids", Json::array()}};
}

Result<ImageConfig> ImageConfig::parse(std::string_view bytes,
                                       std::optional<std::size_t> expected_layers) {
    auto json = parse_strict_json(bytes);
    if (!json) return Unexpected("invalid image config: " + json.error());
    try {
        const Json& j = *json;
        require_object(j, "");
        check_time(j, "created", "");
        opt_string(j, "author", "");
        req_string(j, "architecture", "");
        req_string(j, "os", "");
        opt_string(j, "os.version", "");
        opt_string_array(j, "os.features", "");
        opt_string(j, "variant", "");
        if (auto c = member(j, "config")) validate_exec(*c);
        auto layers = validate_rootfs(j);
        validate_history(j);
        if (expected_layers && layers != *expected_layers)
            fail("rootfs.diff_ids", "has " + std::to_string(layers) +
                                        " entries but the manifest has " +
                                        std::to_string(*expected_layers) + " layers");
    } catch (const SchemaError& e) {
        return Unexpected("invalid image config: " + e.message);
    }
    return ImageConfig(std::move(*json), 0);
}

Json ImageConfig::canonical_json() const {
    Json out = Json::object();
    for (auto f : image_fields) {
        std::string k(f);
        auto it = doc_.find(k);
        if (f == "architecture" || f == "os") {
            out[k] = it != doc_.end() && it->is_string() ? *it : Json("");
        } else if (f == "config") {
            out[k] = canonical_exec(member(doc_, "config")); // no omitempty effect on a struct
        } else if (f == "rootfs") {
            out[k] = canonical_rootfs(member(doc_, "rootfs"));
        } else if (f == "history") {
            auto h = member(doc_, "history");
            if (!h || !h->is_array() || h->empty()) continue;
            Json arr = Json::array();
            for (const auto& e : *h)
                arr.push_back(e.is_object() ? canonical_history(e) : e);
            out[k] = std::move(arr);
        } else if (it != doc_.end() && !is_empty(*it)) {
            out[k] = f == "created" ? go_time(*it) : *it;
        }
    }
    append_unknown(out, doc_, image_fields);
    return out;
}

std::string ImageConfig::serialize() const {
    return go_marshal(canonical_json());
}

std::string ImageConfig::architecture() const {
    return string_at(&doc_, "architecture");
}
std::string ImageConfig::os() const {
    return string_at(&doc_, "os");
}
std::string ImageConfig::variant() const {
    return string_at(&doc_, "variant");
}

Platform ImageConfig::platform() const {
    Platform p;
    p.architecture = architecture();
    p.os = os();
    p.os_version = string_at(&doc_, "os.version");
    p.os_features = strings_at(&doc_, "os.features");
    p.variant = variant();
    return p;
}

void ImageConfig::set_platform(const Platform& p) {
    doc_["architecture"] = p.architecture;
    doc_["os"] = p.os;
    set_or_erase(doc_, "os.version", p.os_version);
    set_or_erase(doc_, "os.features", p.os_features);
    set_or_erase(doc_, "variant", p.variant);
}

void ImageConfig::set_created(std::string rfc3339) {
    set_or_erase(doc_, "created", std::move(rfc3339));
}
void ImageConfig::set_author(std::string author) {
    set_or_erase(doc_, "author", std::move(author));
}

std::vector<std::string> ImageConfig::diff_ids() const {
    return strings_at(member(doc_, "rootfs"), "diff_ids");
}

void ImageConfig::add_layer(std::string diff_id, History h) {
    if (!member(doc_, "rootfs") || !doc_["rootfs"].is_object()) doc_["rootfs"] = Json::object();
    auto& r = doc_["rootfs"];
    if (!r.contains("type")) r["type"] = "layers";
    if (!member(r, "diff_ids")) r["diff_ids"] = Json::array();
    r["diff_ids"].push_back(std::move(diff_id));
    h.empty_layer = false;
    if (!member(doc_, "history")) doc_["history"] = Json::array();
    Json e = Json::object();
    e["created"] = h.created;
    e["created_by"] = h.created_by;
    e["author"] = h.author;
    e["comment"] = h.comment;
    doc_["history"].push_back(canonical_history(e));
}

void ImageConfig::add_empty_layer_history(History h) {
    if (!member(doc_, "history")) doc_["history"] = Json::array();
    Json e = Json::object();
    e["created"] = h.created;
    e["created_by"] = h.created_by;
    e["author"] = h.author;
    e["comment"] = h.comment;
    e["empty_layer"] = true;
    doc_["history"].push_back(canonical_history(e));
}

std::vector<History> ImageConfig::history() const {
    std::vector<History> out;
    auto h = member(doc_, "history");
    if (!h || !h->is_array()) return out;
    for (const auto& e : *h) {
        History x;
        x.created = string_at(&e, "created");
        x.created_by = string_at(&e, "created_by");
        x.author = string_at(&e, "author");
        x.comment = string_at(&e, "comment");
        auto el = member(e, "empty_layer");
        x.empty_layer = el && el->is_boolean() && el->get<bool>();
        out.push_back(std::move(x));
    }
    return out;
}

Json& ImageConfig::exec_config() {
    if (!member(doc_, "config") || !doc_["config"].is_object()) doc_["config"] = Json::object();
    return doc_["config"];
}

const Json* ImageConfig::exec_config() const {
    return member(doc_, "config");
}

std::string ImageConfig::user() const {
    return string_at(exec_config(), "User");
}
void ImageConfig::set_user(std::string u) {
    set_or_erase(exec_config(), "User", std::move(u));
}
std::vector<std::string> ImageConfig::env() const {
    return strings_at(exec_config(), "Env");
}
void ImageConfig::set_env(const std::vector<std::string>& e) {
    set_or_erase(exec_config(), "Env", e);
}

void ImageConfig::set_env_var(std::string_view name, std::string_view value) {
    auto env = this->env();
    std::string entry = std::string(name) + "=" + std::string(value);
    auto prefix = std::string(name) + "=";
    auto it = std::find_if(env.begin(), env.end(),
                           [&](const std::string& e) { return e.starts_with(prefix); });
    if (it != env.end())
        *it = entry;
    else
        env.push_back(entry);
    set_env(env);
}

std::vector<std::string> ImageConfig::entrypoint() const {
    return strings_at(exec_config(), "Entrypoint");
}
void ImageConfig::set_entrypoint(const std::vector<std::string>& a) {
    set_or_erase(exec_config(), "Entrypoint", a);
}
std::vector<std::string> ImageConfig::cmd() const {
    return strings_at(exec_config(), "Cmd");
}
void ImageConfig::set_cmd(const std::vector<std::string>& a) {
    set_or_erase(exec_config(), "Cmd", a);
}
std::string ImageConfig::working_dir() const {
    return string_at(exec_config(), "WorkingDir");
}
void ImageConfig::set_working_dir(std::string d) {
    set_or_erase(exec_config(), "WorkingDir", std::move(d));
}

std::map<std::string, std::string> ImageConfig::labels() const {
    std::map<std::string, std::string> out;
    auto c = exec_config();
    auto l = c ? member(*c, "Labels") : nullptr;
    if (!l || !l->is_object()) return out;
    for (const auto& [k, v] : l->items())
        if (v.is_string()) out.emplace(k, v.get<std::string>());
    return out;
}

void ImageConfig::set_label(const std::string& key, std::string value) {
    auto l = labels();
    l[key] = std::move(value);
    set_labels(l);
}

void ImageConfig::set_labels(const std::map<std::string, std::string>& l) {
    set_or_erase(exec_config(), "Labels", sorted_object(l));
}

std::vector<std::string> ImageConfig::exposed_ports() const {
    return keys_at(exec_config(), "ExposedPorts");
}

void ImageConfig::add_exposed_port(const std::string& port) {
    auto& c = exec_config();
    if (!member(c, "ExposedPorts")) c["ExposedPorts"] = Json::object();
    c["ExposedPorts"][port] = Json::object();
}

std::vector<std::string> ImageConfig::volumes() const {
    return keys_at(exec_config(), "Volumes");
}

void ImageConfig::add_volume(const std::string& path) {
    auto& c = exec_config();
    if (!member(c, "Volumes")) c["Volumes"] = Json::object();
    c["Volumes"][path] = Json::object();
}

std::string ImageConfig::stop_signal() const {
    return string_at(exec_config(), "StopSignal");
}
void ImageConfig::set_stop_signal(std::string s) {
    set_or_erase(exec_config(), "StopSignal", std::move(s));
}

} // namespace factory::oci
