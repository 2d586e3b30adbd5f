#include "cache/block_map.hpp"

#include "cache/blob_store.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/sha256_midstate.hpp"

#include <charconv>
#include <optional>

namespace factory::cache {

namespace {

constexpr std::string_view magic_v1 = "factory-blocks 1\n";
constexpr std::string_view magic_v2 = "factory-blocks 2\n";
constexpr std::size_t max_map_size = 64u << 20; // ~700,000 blocks: a 700 GB layer

bool printable_line(std::string_view s) {
    for (char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return !s.empty();
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
    if (s.size() > 1 && s[0] == '0') return std::nullopt; // one spelling per number
    return v;
}

std::string_view next_line(std::string_view& rest) {
    auto nl = rest.find('\n');
    if (nl == std::string_view::npos) {
        auto line = rest;
        rest = {};
        return line;
    }
    auto line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return line;
}

std::vector<std::string_view> split_spaces(std::string_view line) {
    std::vector<std::string_view> out;
    for (;;) {
        auto sp = line.find(' ');
        out.push_back(line.substr(0, sp));
        if (sp == std::string_view::npos) return out;
        line.remove_prefix(sp + 1);
    }
}

// A midstate as the layer writer spells it: hex digits and one '.'. Its meaning is checked
// where it is used; here only that it is one well-formed word.
bool state_word(std::string_view s) {
    if (s.size() < 65 || s.size() > 65 + 126 || s.find('.') != 64) return false;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (i != 64 && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

Result<Block> parse_block_line(std::string_view line, std::size_t number, bool v2) {
    auto where = "line " + std::to_string(number) + ": ";
    auto words = split_spaces(line);
    if (words.size() != (v2 ? 6u : 3u))
        return Unexpected(where + (v2 ? "expected KEY OFFSET SIZE INPUT_END INPUT_STATE BLOB_STATE"
                                      : "expected KEY OFFSET SIZE"));
    Block b;
    b.key = std::string(words[0]);
    if (!is_sha256_hex(b.key)) return Unexpected(where + "the key is not 64 hex digits");
    auto offset = parse_u64(words[1]);
    auto size = parse_u64(words[2]);
    if (!offset) return Unexpected(where + "bad offset");
    if (!size) return Unexpected(where + "bad size");
    b.offset = *offset;
    b.size = *size;
    if (!v2) return b;
    auto input_end = parse_u64(words[3]);
    if (!input_end || *input_end == 0) return Unexpected(where + "bad input end");
    if (!state_word(words[4]) || !state_word(words[5]))
        return Unexpected(where + "bad SHA-256 state");
    b.input_end = *input_end;
    b.input_state = std::string(words[4]);
    b.blob_state = std::string(words[5]);
    return b;
}

} // namespace

bool has_midstates(const BlockMap& map) {
    if (map.blocks.empty()) return false;
    for (const auto& b : map.blocks)
        if (b.input_end == 0 || b.input_state.empty() || b.blob_state.empty()) return false;
    return true;
}

std::string serialize_block_map(const BlockMap& map) {
    bool v2 = has_midstates(map);
    std::string out(v2 ? magic_v2 : magic_v1);
    out += "format " + map.format + "\n";
    for (const auto& b : map.blocks) {
        out += b.key + ' ' + std::to_string(b.offset) + ' ' + std::to_string(b.size);
        if (v2) out += ' ' + std::to_string(b.input_end) + ' ' + b.input_state + ' ' + b.blob_state;
        out += '\n';
    }
    out += "end " + Sha256::hex(out) + "\n";
    return out;
}

Result<BlockMap> parse_block_map(std::string_view text) {
    bool v2 = text.starts_with(magic_v2);
    if (!v2 && !text.starts_with(magic_v1))
        return Unexpected("not a block map (no \"factory-blocks 1\" or \"factory-blocks 2\")");
    auto end = text.rfind("end ");
    if (end == std::string_view::npos || text.size() != end + 4 + 64 + 1 || text.back() != '\n')
        return Unexpected("truncated (no end line)");
    if (Sha256::hex(text.substr(0, end)) != text.substr(end + 4, 64))
        return Unexpected("checksum mismatch (edited or corrupt)");
    auto rest = text.substr(magic_v1.size(), end - magic_v1.size());
    BlockMap map;
    auto format = next_line(rest);
    if (!format.starts_with("format ") || !printable_line(format.substr(7)))
        return Unexpected("line 2: expected \"format FORMAT\"");
    map.format = std::string(format.substr(7));
    for (std::size_t number = 3; !rest.empty(); ++number) {
        auto block = parse_block_line(next_line(rest), number, v2);
        if (!block) return Unexpected(block.error());
        if (v2 && !map.blocks.empty() && block->input_end <= map.blocks.back().input_end)
            return Unexpected("line " + std::to_string(number) + ": the input end does not grow");
        map.blocks.push_back(std::move(*block));
    }
    return map;
}

Result<void> check_block_tiling(const BlockMap& map, std::uint64_t blob_size) {
    std::uint64_t at = 0;
    for (std::size_t i = 0; i < map.blocks.size(); ++i) {
        const auto& b = map.blocks[i];
        if (b.offset != at || b.size == 0 || b.size > blob_size - at)
            return Unexpected("block " + std::to_string(i + 1) + " (offset " +
                              std::to_string(b.offset) + ", " + std::to_string(b.size) +
                              " bytes) does not follow the one before inside the blob of " +
                              std::to_string(blob_size) + " bytes");
        at += b.size;
    }
    if (at != blob_size)
        return Unexpected("the blocks cover " + std::to_string(at) + " of the blob's " +
                          std::to_string(blob_size) + " bytes");
    return {};
}

Result<void> check_block_midstates(const BlockMap& map, std::string_view blob_hex) {
    if (!has_midstates(map)) return {};
    const auto& last = map.blocks.back();
    auto state = Sha256Midstate::parse(last.blob_state, last.offset + last.size);
    if (!state) return Unexpected("the last block's blob state: " + state.error());
    if (ResumableSha256(*state).hex_digest() != blob_hex)
        return Unexpected("the last block's blob state is not that of the blob's bytes");
    return {};
}

BlockMaps::BlockMaps(const fs::path& root) : files_(root / "blocks", max_map_size) {}

fs::path BlockMaps::path(std::string_view blob_hex) const {
    return files_.path(blob_hex);
}

void BlockMaps::put(std::string_view blob_hex, const BlockMap& map) const {
    files_.put(blob_hex, serialize_block_map(map));
}

Result<BlockMap> BlockMaps::read(std::string_view blob_hex) const {
    auto text = files_.read(blob_hex);
    if (!text) return Unexpected(text.error());
    auto map = parse_block_map(*text);
    if (!map) return Unexpected(files_.path(blob_hex).string() + ": " + map.error());
    return map;
}

std::vector<std::string> BlockMaps::list() const {
    return files_.list();
}

bool BlockMaps::remove(std::string_view blob_hex) const {
    return files_.remove(blob_hex);
}

} // namespace factory::cache
