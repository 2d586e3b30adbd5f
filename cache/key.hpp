#pragma once
// Cache keys (docs/cache.md "Key derivation"): a key is the sha256 of a list of tagged,
// length-framed fields, so that no two different field lists hash the same bytes:
//
//   key    = sha256( field("format", key_format) field* )
//   field  = u32le(len(tag)) tag u64le(len(value)) value
//
// The caller (the build planner) decides which fields a step kind has and their order; cache/
// knows nothing of recipes. Besides the digest, a KeyBuilder keeps the plain (tag, value) list so
// that an action record can say what it was keyed on and `factory why` can name what changed.
//
// Copy inputs enter a key as one field, their merkle_digest().

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace factory::cache {

// The first field of every key. Bump it when the framing or the meaning of a field changes: every
// old key then misses instead of matching something it did not mean.
//   2: "compression" = "gzip" now means libdeflate members (layer/gzip.hpp), not zlib blocks; a
//      store's old records would otherwise hand back layers of the other format.
//   3: gzip members also end at content-defined cut points between tar entries (layer/gzip.hpp),
//      so a layer over 512 KiB has other bytes than under 2.
//   4: "compression" = "zstd" now means a zstd frame per block (layer/zstd.hpp), not one frame.
inline constexpr std::string_view key_format = "factory-key/4";
// Values longer than this are kept in fields() as "sha256:<hex> (<n> bytes)"; the key itself
// always hashes the full value.
inline constexpr std::size_t max_plain_value = 200;

using Fields = std::vector<std::pair<std::string, std::string>>;

class KeyBuilder {
  public:
    // Starts with the ("format", key_format) field.
    KeyBuilder();

    // Appends one field. Tags may repeat (a list is a repeated tag); order matters.
    KeyBuilder& add(std::string_view tag, std::string_view value);
    KeyBuilder& add(std::string_view tag, std::int64_t value);

    // 64 lower-case hex digits. The builder can still be extended afterwards.
    std::string hex() const;
    // The fields as added (with the format field first), long values elided (max_plain_value).
    const Fields& fields() const noexcept { return fields_; }

  private:
    std::string framed_; // the bytes hashed by hex()
    Fields fields_;
};

// One file of a copy step's input, as it will be in the layer. Not its mtime, not the checkout's
// owner or umask: only what ends up in the image.
struct InputFile {
    std::string path;       // destination path in the layer, '/'-separated
    std::string type;       // "file", "dir", "symlink", "hardlink" …
    bool exec = false;      // the executable bit of the source (when the mode is not declared)
    std::string sha256;     // content digest (hex) for files, "" otherwise
    std::string link;       // symlink or hardlink target, "" otherwise
    std::string owner_mode; // the declared uid:gid and mode ("0:0:0644"), "" when not declared

    bool operator==(const InputFile&) const = default;
};

// A digest over a set of inputs, independent of their order in the vector:
//   sha256( frame("factory-inputs/1") u64le(count) ( frame(path) frame(type) frame("0"|"1")
//           frame(sha256) frame(link) frame(owner_mode) )* )   with frame(s) = u64le(len(s)) s
// over the entries sorted by path (then by the other fields, so duplicates are still ordered).
std::string merkle_digest(const std::vector<InputFile>& inputs);

// What changed between two field lists, for `factory why`. Fields are matched by tag and by
// occurrence (the second "env" against the second "env").
struct FieldChange {
    std::string tag;
    std::optional<std::string> before; // nullopt: the field is new
    std::optional<std::string> after;  // nullopt: the field is gone
};
std::vector<FieldChange> diff_fields(const Fields& before, const Fields& after);

// Which input paths were added, removed or changed (any attribute), each list sorted.
struct InputChanges {
    std::vector<std::string> added, removed, changed;
    bool empty() const noexcept { return added.empty() && removed.empty() && changed.empty(); }
};
InputChanges diff_inputs(const std::vector<InputFile>& before, const std::vector<InputFile>& after);

} // namespace factory::cache
