#pragma once
// JSON as the OCI tools read and write it.
//
// Writing: go_marshal() produces the bytes Go's encoding/json Marshal produces for the same
// value: compact, no trailing newline, `<`, `>`, `&`, U+2028 and U+2029 escaped as \u003c …,
// control characters as \b \f \n \r \t or \u00XX, invalid UTF-8 replaced by U+FFFD, objects in the
// order they are stored. Callers build objects in the field order of the Go struct, and maps with
// sorted keys (Go sorts map keys), so digests match what Go tools write (docs/oci.md "JSON").
//
// Reading: parse_strict_json() rejects oversize input, duplicate keys (I-JSON, which nlohmann
// would silently resolve to the last), nesting deeper than a cap, and anything that is not one
// JSON value. It is linear in the input, whatever the number of keys.

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "factory/util/error.hpp"

namespace factory::oci {

using Json = nlohmann::ordered_json;

struct JsonLimits {
    std::size_t max_bytes = 4u << 20; // containerd caps manifests at 4 MiB too
    std::size_t max_depth = 64;
};

Result<Json> parse_strict_json(std::string_view bytes, const JsonLimits& limits = {});

std::string go_marshal(const Json& value);
// Appends s as a Go-escaped JSON string (with quotes).
void go_append_string(std::string& out, std::string_view s);

} // namespace factory::oci
