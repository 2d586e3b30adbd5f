#pragma once
// The names of the fields a step's cache key is made of (docs/cache.md "Key derivation"). Each
// step kind (step_kind.hpp) says which of them its key has, in which order; `cache ls` and
// `factory why` read records through the same names. A field's name and meaning are part of the
// key format: renaming one makes every old key miss (bump cache::key_format and say so in
// docs/cache.md).

#include <string>
#include <string_view>

#include "cache/key.hpp"

namespace factory::builder {

// The first value of a field in a record's fields, or "".
std::string field_value(const cache::Fields& fields, std::string_view tag);
// What a record was made from, in a few words (`cache ls`), through the step kind its `kind`
// field names: "run make && cp app /out/app". "" for a kind no step kind knows.
std::string describe_record(const cache::Fields& fields);

} // namespace factory::builder

namespace factory::builder::field {

inline constexpr std::string_view kind = "kind";         // the step kind's name, first for bases
inline constexpr std::string_view parent = "parent";     // the key (or base digest) below the step
inline constexpr std::string_view platform = "platform"; // "linux/amd64[/variant]"
inline constexpr std::string_view epoch = "epoch";       // SOURCE_DATE_EPOCH of the build
inline constexpr std::string_view compression = "compression"; // "gzip" | "zstd"

// copy
inline constexpr std::string_view copy = "copy";     // one item: "src=…;dest=…;mode=…;"
inline constexpr std::string_view inputs = "inputs"; // merkle digest of the files copied

// run
inline constexpr std::string_view arg = "arg"; // one argv word
inline constexpr std::string_view env = "env"; // one "NAME=value" the command sees
inline constexpr std::string_view user = "user";
inline constexpr std::string_view workdir = "workdir";
inline constexpr std::string_view network = "network"; // "none" | "host"
inline constexpr std::string_view cache = "cache";     // a cache mount: "id=target"
inline constexpr std::string_view secret = "secret";   // "id=target" — never the value

// git
inline constexpr std::string_view git_url = "git-url";       // the URL without credentials
inline constexpr std::string_view git_commit = "git-commit"; // the ref resolved
inline constexpr std::string_view git_ref = "git-ref";       // the full ref name (keep_git only)
inline constexpr std::string_view dest = "dest";
inline constexpr std::string_view submodules = "submodules"; // "yes" | "no"
inline constexpr std::string_view keep_git = "keep-git";     // "yes" | "no"
inline constexpr std::string_view depth = "depth";
inline constexpr std::string_view mtime = "mtime"; // "epoch" | "commit"

// download
inline constexpr std::string_view sha256 = "sha256";
inline constexpr std::string_view file_name = "name"; // for a dest ending in '/'
inline constexpr std::string_view mode = "mode";
inline constexpr std::string_view extract = "extract"; // "yes" | "no"

// image base
inline constexpr std::string_view source = "source";   // "oci" | "oci-archive"
inline constexpr std::string_view tag = "tag";         // the ref.name chosen in the source
inline constexpr std::string_view content = "content"; // sha256 of index.json or the archive

// registry base (and content: the manifest digest the reference resolved to)
inline constexpr std::string_view reference = "reference"; // "HOST/REPO[:TAG][@DIGEST]"

// debian base
inline constexpr std::string_view suite = "suite";
inline constexpr std::string_view variant = "variant";
inline constexpr std::string_view include = "include"; // one package
inline constexpr std::string_view mirror = "mirror";
inline constexpr std::string_view component = "component";
inline constexpr std::string_view architecture = "architecture";

} // namespace factory::builder::field
