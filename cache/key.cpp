#include "cache/key.hpp"

#include "factory/util/sha256.hpp"

#include <algorithm>
#include <map>
#include <tuple>

namespace factory::cache {

namespace {

// Little-endian whatever the host: a key must be the same on every machine.
void put_le(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void frame(std::string& out, std::string_view s) {
    put_le(out, s.size(), 8);
    out.append(s);
}

std::string plain_value(std::string_view value) {
    if (value.size() <= max_plain_value) return std::string(value);
    return "sha256:" + Sha256::hex(value) + " (" + std::to_string(value.size()) + " bytes)";
}

auto sort_key(const InputFile& f) {
    return std::tie(f.path, f.type, f.exec, f.sha256, f.link, f.owner_mode);
}

} // namespace

KeyBuilder::KeyBuilder() {
    add("format", key_format);
}

KeyBuilder& KeyBuilder::add(std::string_view tag, std::string_view value) {
    put_le(framed_, tag.size(), 4);
    framed_.append(tag);
    frame(framed_, value);
    fields_.emplace_back(std::string(tag), plain_value(value));
    return *this;
}

KeyBuilder& KeyBuilder::add(std::string_view tag, std::int64_t value) {
    return add(tag, std::string_view(std::to_string(value)));
}

std::string KeyBuilder::hex() const {
    return Sha256::hex(framed_);
}

std::string merkle_digest(const std::vector<InputFile>& inputs) {
    std::vector<const InputFile*> sorted;
    sorted.reserve(inputs.size());
    for (const auto& f : inputs)
        sorted.push_back(&f);
    auto less = [](const InputFile* a, const InputFile* b) { return sort_key(*a) < sort_key(*b); };
    // A copy step's inputs mostly come in order already (canonical order, which is byte order
    // unless a name has a byte below '/'): one pass to see it beats a sort.
    if (!std::is_sorted(sorted.begin(), sorted.end(), less))
        std::sort(sorted.begin(), sorted.end(), less);

    Sha256 h;
    std::string buf;
    frame(buf, "factory-inputs/1");
    put_le(buf, inputs.size(), 8);
    for (const InputFile* f : sorted) {
        frame(buf, f->path);
        frame(buf, f->type);
        frame(buf, f->exec ? "1" : "0");
        frame(buf, f->sha256);
        frame(buf, f->link);
        frame(buf, f->owner_mode);
        if (buf.size() >=
            (1u << 16)) { // hash in chunks: 20,000 inputs need not sit in memory twice
            h.update(buf);
            buf.clear();
        }
    }
    h.update(buf);
    return h.hex_digest();
}

std::vector<FieldChange> diff_fields(const Fields& before, const Fields& after) {
    // (tag, occurrence) → value, in first-seen order of `after` then `before`.
    using Slot = std::pair<std::string, std::size_t>;
    auto index = [](const Fields& fields) {
        std::map<Slot, std::string> out;
        std::map<std::string, std::size_t> seen;
        for (const auto& [tag, value] : fields)
            out[{tag, seen[tag]++}] = value;
        return out;
    };
    auto old_values = index(before);
    auto new_values = index(after);

    std::vector<FieldChange> changes;
    std::map<std::string, std::size_t> seen;
    for (const auto& [tag, value] : after) {
        Slot slot{tag, seen[tag]++};
        auto it = old_values.find(slot);
        if (it == old_values.end())
            changes.push_back({tag, std::nullopt, value});
        else if (it->second != value)
            changes.push_back({tag, it->second, value});
    }
    seen.clear();
    for (const auto& [tag, value] : before) {
        Slot slot{tag, seen[tag]++};
        if (!new_values.count(slot)) changes.push_back({tag, value, std::nullopt});
    }
    return changes;
}

InputChanges diff_inputs(const std::vector<InputFile>& before,
                         const std::vector<InputFile>& after) {
    std::map<std::string_view, const InputFile*> old_by_path, new_by_path;
    for (const auto& f : before)
        old_by_path.emplace(f.path, &f);
    for (const auto& f : after)
        new_by_path.emplace(f.path, &f);
    InputChanges out;
    for (const auto& [path, f] : new_by_path) {
        auto it = old_by_path.find(path);
        if (it == old_by_path.end())
            out.added.emplace_back(path);
        else if (!(*it->second == *f))
            out.changed.emplace_back(path);
    }
    for (const auto& [path, f] : old_by_path)
        if (!new_by_path.count(path)) out.removed.emplace_back(path);
    return out;
}

} // namespace factory::cache
