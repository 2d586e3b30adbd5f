#pragma once
// Internal to factory/oci: typed access to fields of an untrusted JSON document. Each accessor
// throws SchemaError naming the field's path ("layers[2].digest"); the public parse_* functions
// catch it once and return it as a Result error.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/oci/json.hpp"

namespace factory::oci::detail {

struct SchemaError {
    std::string message;
};

[[noreturn]] void fail(const std::string& path, const std::string& what);
std::string join(const std::string& path, std::string_view key);
std::string join(const std::string& path, std::size_t index);
// The member, or nullptr when absent or null (the image spec treats null as absent).
const Json* member(const Json& obj, std::string_view key);

const Json& require_object(const Json& v, const std::string& path);
std::optional<std::string> opt_string(const Json& obj, std::string_view key,
                                      const std::string& path);
std::string req_string(const Json& obj, std::string_view key, const std::string& path);
std::optional<bool> opt_bool(const Json& obj, std::string_view key, const std::string& path);
// An integer in [min, max]; rejects fractions and out-of-range numbers.
std::optional<std::int64_t> opt_int(const Json& obj, std::string_view key, const std::string& path,
                                    std::int64_t min, std::int64_t max);
std::vector<std::string> opt_string_array(const Json& obj, std::string_view key,
                                          const std::string& path);
std::map<std::string, std::string> opt_string_map(const Json& obj, std::string_view key,
                                                  const std::string& path);
// A map whose values are objects (Go map[string]struct{}): ExposedPorts, Volumes.
std::vector<std::string> opt_set(const Json& obj, std::string_view key, const std::string& path);

// A sorted-key JSON object from a map, as Go marshals map[string]string.
Json sorted_object(const std::map<std::string, std::string>& m);

// Strict standard base64 with padding (Go's base64.StdEncoding).
std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

// Quotes untrusted text for an error message, bounded and with control characters escaped.
std::string quote(std::string_view s);

} // namespace factory::oci::detail
