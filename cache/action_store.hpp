#pragma once
// The action cache (docs/cache.md "actions/"): step key → result record.
//
//   actions/<2 hex>/<key>.json     the record (JSON, one line), read on every lookup
//   actions/<2 hex>/<key>.inputs   the step's input list (line format), read only by `factory why`
//   steps/<2 hex>/<step id>        the key of the last build of a step identity
//
// A record names every blob its result needs; it is published (AtomicFile) only after those
// blobs are in the store, and lookup() returns it only while they still are, so a hit never
// points at nothing. lookup() also bumps the record's mtime: mtime is "last used", the order in
// which `cache prune` evicts (gc.hpp). The result JSON is opaque here: the builder puts the layer
// descriptor, diff_id and config delta in it.

#include "cache/blob_store.hpp"
#include "cache/key.hpp"
#include "factory/util/error.hpp"

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace factory::cache {

namespace fs = std::filesystem;

inline constexpr int action_record_version = 1;

struct ActionRecord {
    std::string key;     // 64 hex
    std::string step_id; // 64 hex, or "" (the step identity `factory why` follows)
    Fields fields;       // what the key was derived from (KeyBuilder::fields())
    // The step's inputs; filled only when read WithInputs::yes (see input_count).
    std::vector<InputFile> inputs;
    std::size_t input_count = 0;    // how many inputs the record has, loaded or not
    nlohmann::json result;          // opaque to cache/
    std::vector<std::string> blobs; // sha256 hex of every blob the result needs
    std::int64_t created = 0;       // unix seconds; put() fills 0 with now
};

enum class WithInputs { no, yes };

// A record file as found on disk, for listing and GC.
struct RecordFile {
    std::string key;
    fs::path path;
    std::uint64_t bytes = 0;    // record + inputs file
    std::int64_t last_used = 0; // the record's mtime, nanoseconds since the epoch
};

class ActionStore {
  public:
    // root: the store root (actions/ and steps/ are created below it on demand).
    ActionStore(fs::path root, BlobStore& blobs);

    // Throws Error if key is not 64 lower-case hex digits.
    fs::path record_path(std::string_view key) const;
    fs::path inputs_path(std::string_view key) const;

    // A usable record for key, or nullopt when it is missing, unreadable or unparsable (an
    // unparsable one is removed) or when one of its blobs is missing. On a hit the record's mtime
    // is set to now (ignored if the store is read-only). Inputs are not loaded. Throws Error only
    // for an invalid key.
    std::optional<ActionRecord> lookup(std::string_view key);

    // Publishes a record: checks that every blob exists, writes the inputs file, then the record
    // (both atomically). Replaces an existing record for the same key. Throws Error.
    void put(const ActionRecord& record);

    // Reads a record as it is, without checking its blobs or touching it. Errors: "no action
    // record <key>" or "<path>: <why it can't be parsed>".
    Result<ActionRecord> read(std::string_view key, WithInputs inputs = WithInputs::no) const;

    // The record of the last build of step_id (set_last_for_step), with its inputs; nullopt if
    // there is none or it is gone. Its blobs are not checked: this is for explaining.
    std::optional<ActionRecord> last_for_step(std::string_view step_id) const;
    // Throws Error for an invalid id or key, or if the pointer can't be written.
    void set_last_for_step(std::string_view step_id, std::string_view key);
    // steps/<2 hex>/<step id>.
    fs::path step_path(std::string_view step_id) const;

    // Every record file (names that aren't <64 hex>.json are skipped), in no particular order.
    std::vector<RecordFile> list() const;
    // Removes a record and its inputs file; a missing one is not an error. Throws Error on others.
    void remove(std::string_view key);

  private:
    Result<ActionRecord> read_record(std::string_view key, WithInputs inputs,
                                     bool& unparsable) const;

    fs::path root_;
    BlobStore* blobs_;
};

// The record's JSON text (as put() writes it) and back; exposed for tests and `cache ls`.
std::string record_to_json(const ActionRecord& record);
Result<ActionRecord> record_from_json(std::string_view text);
// The inputs file: "factory-inputs 1\n" then one line per input, six tab-separated fields
// (path, type, exec 0|1, sha256, link, owner_mode) with '\\', '\t', '\n' escaped as \\ \t \n.
std::string inputs_to_text(const std::vector<InputFile>& inputs);
Result<std::vector<InputFile>> inputs_from_text(std::string_view text);

} // namespace factory::cache
