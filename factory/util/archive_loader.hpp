#pragma once
// libarchive, loaded on first use (as libcurl is: curl_loader.hpp).
//
// factory is not linked against libarchive: factory/util/archive_loader.cpp defines the
// libarchive functions factory and its tests call (with archive.h's own declarations, so call
// sites are plain libarchive) and the first one to run loads libarchive.so.13. Its dependencies
// (libxml2 and ICU among them) cost ~4 ms of initializers at every start; a command that reads
// no tar (`factory --version`, a no-op build of a copy recipe, `factory shell` of a built image)
// now pays none of it.
//
// When the library can't be loaded, the constructors return null (archive_read_new,
// archive_write_new, archive_entry_new), functions returning a status return ARCHIVE_FATAL, and
// archive_error_string says why (archive_load_error()).

#include <string>

namespace factory {

// Loads libarchive if no libarchive function has yet; empty when it is loaded, else what
// dlopen or dlsym said.
std::string archive_load_error();

// "libarchive: " and why a constructor returned null: the load error, or "out of memory".
std::string archive_null_error();

} // namespace factory
