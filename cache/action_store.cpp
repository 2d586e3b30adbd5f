#include "cache/action_store.hpp"

#include "cache/sharded.hpp"
#include "factory/util/files.hpp"

#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace factory::cache {

namespace {

using json = nlohmann::json;

constexpr std::uint64_t max_record_size = 16u << 20;
constexpr std::uint64_t max_inputs_size = 256u << 20;
constexpr std::string_view inputs_header = "factory-inputs 1\n";

void require_hex(std::string_view s, const char* what) {
    if (!is_sha256_hex(s))
        throw Error("invalid " + std::string(what) + " \"" + std::string(s.substr(0, 80)) +
                    "\": expected 64 lower-case hex digits");
}

fs::path sharded(const fs::path& dir, std::string_view hex, std::string_view suffix) {
    return dir / std::string(hex.substr(0, 2)) / (std::string(hex) + std::string(suffix));
}

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void create_dir(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
}

std::string escape_field(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out += c;
        }
    }
    return out;
}

Result<std::string> unescape_field(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        if (++i == s.size()) return Unexpected("dangling escape");
        switch (s[i]) {
        case '\\':
            out += '\\';
            break;
        case 't':
            out += '\t';
            break;
        case 'n':
            out += '\n';
            break;
        default:
            return Unexpected(std::string("unknown escape \\") + s[i]);
        }
    }
    return out;
}

Result<InputFile> parse_input_line(std::string_view line) {
    std::string parts[6];
    std::size_t n = 0;
    for (std::size_t start = 0;;) {
        auto tab = line.find('\t', start);
        auto piece = line.substr(start, tab == std::string_view::npos ? line.npos : tab - start);
        if (n == 6) return Unexpected("more than 6 fields");
        auto value = unescape_field(piece);
        if (!value) return Unexpected(value.error());
        parts[n++] = std::move(*value);
        if (tab == std::string_view::npos) break;
        start = tab + 1;
    }
    if (n != 6) return Unexpected("expected 6 fields, got " + std::to_string(n));
    if (parts[2] != "0" && parts[2] != "1") return Unexpected("exec must be 0 or 1");
    return InputFile{std::move(parts[0]), std::move(parts[1]), parts[2] == "1",
                     std::move(parts[3]), std::move(parts[4]), std::move(parts[5])};
}

// Reads the record's JSON fields; throws json exceptions on a type mismatch (caught by caller).
ActionRecord record_from(const json& j) {
    if (!j.is_object()) throw std::runtime_error("not a JSON object");
    if (j.at("version").get<int>() != action_record_version)
        throw std::runtime_error("unsupported record version " + j.at("version").dump());
    ActionRecord r;
    r.key = j.at("key").get<std::string>();
    if (!is_sha256_hex(r.key)) throw std::runtime_error("invalid key");
    r.step_id = j.at("step").get<std::string>();
    if (!r.step_id.empty() && !is_sha256_hex(r.step_id)) throw std::runtime_error("invalid step");
    r.created = j.at("created").get<std::int64_t>();
    for (const auto& f : j.at("fields")) {
        if (!f.is_array() || f.size() != 2) throw std::runtime_error("a field is not [tag, value]");
        r.fields.emplace_back(f[0].get<std::string>(), f[1].get<std::string>());
    }
    for (const auto& b : j.at("blobs")) {
        auto hex = b.get<std::string>();
        if (!is_sha256_hex(hex)) throw std::runtime_error("invalid blob \"" + hex + "\"");
        r.blobs.push_back(std::move(hex));
    }
    r.input_count = j.at("inputs").get<std::size_t>();
    r.result = j.at("result");
    return r;
}

} // namespace

std::string record_to_json(const ActionRecord& r) {
    // Field order is fixed (ordered_json) so records are easy to read and diff.
    nlohmann::ordered_json j;
    j["version"] = action_record_version;
    j["key"] = r.key;
    j["step"] = r.step_id;
    j["created"] = r.created;
    auto& fields = j["fields"] = nlohmann::ordered_json::array();
    for (const auto& [tag, value] : r.fields)
        fields.push_back({tag, value});
    j["blobs"] = r.blobs;
    j["inputs"] = r.inputs.empty() ? r.input_count : r.inputs.size();
    j["result"] = nlohmann::ordered_json::parse(
        r.result.dump(-1, ' ', false, json::error_handler_t::replace));
    // Invalid UTF-8 (a field copied from a file name) is replaced: fields are for explaining, the
    // key was computed from the exact bytes.
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ActionRecord> record_from_json(std::string_view text) {
    auto j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return Unexpected("not valid JSON");
    try {
        return record_from(j);
    } catch (const std::exception& e) {
        return Unexpected(std::string("not an action record: ") + e.what());
    }
}

std::string inputs_to_text(const std::vector<InputFile>& inputs) {
    std::string out(inputs_header);
    for (const auto& f : inputs) {
        out += escape_field(f.path);
        out += '\t';
        out += escape_field(f.type);
        out += f.exec ? "\t1\t" : "\t0\t";
        out += escape_field(f.sha256);
        out += '\t';
        out += escape_field(f.link);
        out += '\t';
        out += escape_field(f.owner_mode);
        out += '\n';
    }
    return out;
}

Result<std::vector<InputFile>> inputs_from_text(std::string_view text) {
    if (!text.starts_with(inputs_header)) return Unexpected("missing header \"factory-inputs 1\"");
    text.remove_prefix(inputs_header.size());
    std::vector<InputFile> out;
    std::size_t line_no = 1;
    while (!text.empty()) {
        ++line_no;
        auto nl = text.find('\n');
        if (nl == std::string_view::npos)
            return Unexpected("line " + std::to_string(line_no) + " is cut short");
        auto f = parse_input_line(text.substr(0, nl));
        if (!f) return Unexpected("line " + std::to_string(line_no) + ": " + f.error());
        out.push_back(std::move(*f));
        text.remove_prefix(nl + 1);
    }
    return out;
}

ActionStore::ActionStore(fs::path root, BlobStore& blobs)
    : root_(std::move(root)), blobs_(&blobs) {}

fs::path ActionStore::record_path(std::string_view key) const {
    require_hex(key, "cache key");
    return sharded(root_ / "actions", key, ".json");
}

fs::path ActionStore::inputs_path(std::string_view key) const {
    require_hex(key, "cache key");
    return sharded(root_ / "actions", key, ".inputs");
}

fs::path ActionStore::step_path(std::string_view step_id) const {
    require_hex(step_id, "step id");
    return sharded(root_ / "steps", step_id, "");
}

Result<ActionRecord> ActionStore::read(std::string_view key, WithInputs with_inputs) const {
    bool unparsable = false;
    return read_record(key, with_inputs, unparsable);
}

Result<ActionRecord> ActionStore::read_record(std::string_view key, WithInputs with_inputs,
                                              bool& unparsable) const {
    auto path = record_path(key);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT)
        return Unexpected("no action record " + std::string(key));
    auto text = read_file(path, max_record_size);
    if (!text) return Unexpected(text.error());
    auto record = record_from_json(*text);
    unparsable = !record || record->key != key;
    if (!record) return Unexpected(path.string() + ": " + record.error());
    if (record->key != key)
        return Unexpected(path.string() + ": holds the record of key " + record->key);
    if (with_inputs == WithInputs::yes && record->input_count > 0) {
        auto ipath = inputs_path(key);
        auto itext = read_file(ipath, max_inputs_size);
        if (!itext) return Unexpected(itext.error());
        auto inputs = inputs_from_text(*itext);
        if (!inputs) return Unexpected(ipath.string() + ": " + inputs.error());
        record->inputs = std::move(*inputs);
    }
    return record;
}

std::optional<ActionRecord> ActionStore::lookup(std::string_view key) {
    auto path = record_path(key);
    bool unparsable = false;
    auto record = read_record(key, WithInputs::no, unparsable);
    if (!record) {
        // Present but not a record of this key (cut short by outside hands, not JSON, copied
        // from another key): drop it, best effort, so the step rebuilds and put() writes a good
        // one. An I/O error (EACCES …) is only a miss.
        if (unparsable) ::unlink(path.c_str());
        return std::nullopt;
    }
    for (const auto& hex : record->blobs)
        if (!blobs_->has(hex)) return std::nullopt;
    // Last use = mtime, for LRU eviction. A read-only store just doesn't record it.
    ::utimensat(AT_FDCWD, path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
    return std::move(*record);
}

void ActionStore::put(const ActionRecord& record) {
    require_hex(record.key, "cache key");
    if (!record.step_id.empty()) require_hex(record.step_id, "step id");
    for (const auto& hex : record.blobs) {
        require_hex(hex, "blob digest");
        // The rule that makes a hit safe: never publish a record naming a blob we don't have.
        if (!blobs_->has(hex))
            throw Error("cannot record action " + record.key + ": blob sha256:" + hex +
                        " is not in the store");
    }
    auto path = record_path(record.key);
    auto ipath = inputs_path(record.key);
    create_dir(path.parent_path());

    ActionRecord out = record;
    if (out.created == 0) out.created = now_seconds();
    out.input_count = record.inputs.empty() ? 0 : record.inputs.size();
    // Inputs first: a record whose input_count > 0 always finds its inputs file.
    if (!record.inputs.empty())
        write_file_atomic(ipath, inputs_to_text(record.inputs));
    else
        ::unlink(ipath.c_str());
    write_file_atomic(path, record_to_json(out));
}

std::optional<ActionRecord> ActionStore::last_for_step(std::string_view step_id) const {
    auto text = read_file(step_path(step_id), 1024);
    if (!text) return std::nullopt;
    std::string key = *text;
    while (!key.empty() && (key.back() == '\n' || key.back() == ' '))
        key.pop_back();
    if (!is_sha256_hex(key)) return std::nullopt;
    auto record = read(key, WithInputs::yes);
    if (!record) return std::nullopt;
    return std::move(*record);
}

void ActionStore::set_last_for_step(std::string_view step_id, std::string_view key) {
    require_hex(key, "cache key");
    auto path = step_path(step_id);
    create_dir(path.parent_path());
    write_file_atomic(path, std::string(key) + "\n");
}

std::vector<RecordFile> ActionStore::list() const {
    std::vector<RecordFile> out;
    for_each_sharded(root_ / "actions", ".json", [&](const std::string& key, const fs::path& p) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
        RecordFile f{key, p, static_cast<std::uint64_t>(st.st_size),
                     static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                         st.st_mtim.tv_nsec};
        struct stat ist {};
        if (::lstat(inputs_path(key).c_str(), &ist) == 0)
            f.bytes += static_cast<std::uint64_t>(ist.st_size);
        out.push_back(std::move(f));
    });
    return out;
}

void ActionStore::remove(std::string_view key) {
    // The record first: a record never outlives its inputs file.
    for (const auto& p : {record_path(key), inputs_path(key)})
        if (::unlink(p.c_str()) != 0 && errno != ENOENT)
            throw Error("cannot remove " + p.string() + ": " + errno_string(errno));
}

} // namespace factory::cache
