#pragma once
// Internal to factory/oci: the throwing forms of the descriptor readers, for the other readers.

#include "factory/oci/descriptor.hpp"
#include "factory/oci/json_fields.hpp"

namespace factory::oci::detail {

Descriptor read_descriptor(const Json& v, const std::string& path);
Platform read_platform(const Json& v, const std::string& path);
std::map<std::string, std::string> read_annotations(const Json& obj, const std::string& path);

// schemaVersion must be the integer 2.
void read_schema_version(const Json& obj);
// The document's own mediaType ("" if absent): must satisfy is_kind and, when expected is not
// empty, equal it; a document without one is accepted only if expected is of the right kind.
std::string read_doc_media_type(const Json& obj, std::string_view expected,
                                bool (*is_kind)(std::string_view), const char* kind);

} // namespace factory::oci::detail
