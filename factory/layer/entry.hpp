#pragma once
// One file-system entry of a layer, as the tar writer sees it, and the canonical order and
// validity rules every layer follows (DESIGN.md "Layers, bit for bit").

#include "factory/util/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace factory::layer {

struct Entry {
    enum class Type { file, dir, symlink, hardlink };

    // Relative to the layer root: no leading "/" or "./", no trailing "/", no empty, "." or
    // ".." component, no NUL byte.
    std::string path;
    Type type = Type::file;
    unsigned mode = 0644; // permission bits incl. setuid/setgid/sticky (07777), no type bits
    std::uint32_t uid = 0, gid = 0;
    // Symlink target (verbatim, not checked), or hardlink target path (same form as `path`).
    std::string link;
    // Content size of a regular file read from `source`; ignored (taken from `data`) when
    // `source` is empty, unless it is non-zero and differs, which is an error.
    std::uint64_t size = 0;
    // Host path of the content, opened with O_NOFOLLOW; must still be a regular file of `size`
    // bytes when the layer is written. Empty: the content is `data`.
    std::string source;
    std::string data; // in-memory content (whiteouts, generated files)
    // sha256 (64 lower-case hex) of the content read from `source`, when the caller knows it
    // (a copy step, from its stat cache); "" otherwise. It never changes a byte of a layer:
    // it lets a gzip layer name its blocks without reading them (block_plan.hpp), so a
    // rebuild can resume after the unchanged ones.
    std::string sha256;
    // Where no sha256 is known, another name of that content the caller vouches for, used the
    // same way: "git-blob:" and the blob's 40-hex id (a git step's file, whose layer the commit
    // id already names). "" otherwise.
    std::string content_id;
    // Extended attributes, name → value (values are binary). Order doesn't matter; names must
    // be unique. `trusted.overlay.*` names are dropped when written.
    std::vector<std::pair<std::string, std::string>> xattrs;
};

// Canonical order: by path components, each compared bytewise, so a directory comes right
// before its children ("a" < "a/b" < "a/c" < "a-b"). Returns true if a sorts before b.
bool path_less(std::string_view a, std::string_view b) noexcept;

// Checks the form of `path` (see Entry::path). Returns a message naming the problem.
Result<void> check_path(std::string_view path);

// Checks one entry on its own: path, mode, type-specific fields and xattr names.
Result<void> check_entry(const Entry& entry);

// Checks every entry, sorts them into canonical order and rejects duplicate paths and
// hardlinks whose target is in `entries` but is a directory or doesn't sort before the link
// (a reader must meet the target first). A hardlink target absent from `entries` is allowed:
// it may live in a lower layer.
Result<std::vector<Entry>> sort_entries(std::vector<Entry> entries);

} // namespace factory::layer
