// The libarchive functions factory calls, each loading libarchive.so.13 on first use
// (archive_loader.hpp).
//
// The definitions below take archive.h's declarations (a C function defined with another
// signature does not compile) and forward to the loaded library, which is opened RTLD_LOCAL
// and never closed. The executable does not export these names (no -rdynamic), so libarchive's
// own calls never land here.

#include "factory/util/archive_loader.hpp"

#include "factory/util/dynamic_library.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <cstdarg>
#include <cstdio>
#include <string>

// X(return type, name, (parameters), (arguments), what it returns when the library is missing)
#define FACTORY_ARCHIVE_FUNCTIONS(X)                                                               \
    X(time_t, archive_entry_atime, (struct archive_entry * a0), (a0), 0)                           \
    X(int, archive_entry_atime_is_set, (struct archive_entry * a0), (a0), 0)                       \
    X(long, archive_entry_atime_nsec, (struct archive_entry * a0), (a0), 0)                        \
    X(int, archive_entry_ctime_is_set, (struct archive_entry * a0), (a0), 0)                       \
    X(mode_t, archive_entry_filetype, (struct archive_entry * a0), (a0), 0)                        \
    X(void, archive_entry_free, (struct archive_entry * a0), (a0), void())                         \
    X(la_int64_t, archive_entry_gid, (struct archive_entry * a0), (a0), 0)                         \
    X(const char*, archive_entry_hardlink, (struct archive_entry * a0), (a0), nullptr)             \
    X(const char*, archive_entry_hardlink_utf8, (struct archive_entry * a0), (a0), nullptr)        \
    X(time_t, archive_entry_mtime, (struct archive_entry * a0), (a0), 0)                           \
    X(int, archive_entry_mtime_is_set, (struct archive_entry * a0), (a0), 0)                       \
    X(long, archive_entry_mtime_nsec, (struct archive_entry * a0), (a0), 0)                        \
    X(struct archive_entry*, archive_entry_new, (), (), nullptr)                                   \
    X(const char*, archive_entry_pathname, (struct archive_entry * a0), (a0), nullptr)             \
    X(const char*, archive_entry_pathname_utf8, (struct archive_entry * a0), (a0), nullptr)        \
    X(mode_t, archive_entry_perm, (struct archive_entry * a0), (a0), 0)                            \
    X(dev_t, archive_entry_rdevmajor, (struct archive_entry * a0), (a0), 0)                        \
    X(dev_t, archive_entry_rdevminor, (struct archive_entry * a0), (a0), 0)                        \
    X(void, archive_entry_set_filetype, (struct archive_entry * a0, unsigned int a1), (a0, a1),    \
      void())                                                                                      \
    X(void, archive_entry_set_gid, (struct archive_entry * a0, la_int64_t a1), (a0, a1), void())   \
    X(void, archive_entry_set_hardlink, (struct archive_entry * a0, const char* a1), (a0, a1),     \
      void())                                                                                      \
    X(void, archive_entry_set_mtime, (struct archive_entry * a0, time_t a1, long a2),              \
      (a0, a1, a2), void())                                                                        \
    X(void, archive_entry_set_pathname, (struct archive_entry * a0, const char* a1), (a0, a1),     \
      void())                                                                                      \
    X(void, archive_entry_set_perm, (struct archive_entry * a0, mode_t a1), (a0, a1), void())      \
    X(void, archive_entry_set_size, (struct archive_entry * a0, la_int64_t a1), (a0, a1), void())  \
    X(void, archive_entry_set_symlink, (struct archive_entry * a0, const char* a1), (a0, a1),      \
      void())                                                                                      \
    X(void, archive_entry_set_uid, (struct archive_entry * a0, la_int64_t a1), (a0, a1), void())   \
    X(la_int64_t, archive_entry_size, (struct archive_entry * a0), (a0), 0)                        \
    X(int, archive_entry_size_is_set, (struct archive_entry * a0), (a0), 0)                        \
    X(int, archive_entry_sparse_count, (struct archive_entry * a0), (a0), 0)                       \
    X(const char*, archive_entry_symlink, (struct archive_entry * a0), (a0), nullptr)              \
    X(const char*, archive_entry_symlink_utf8, (struct archive_entry * a0), (a0), nullptr)         \
    X(la_int64_t, archive_entry_uid, (struct archive_entry * a0), (a0), 0)                         \
    X(const char*, archive_entry_uname, (struct archive_entry * a0), (a0), nullptr)                \
    X(int, archive_entry_xattr_next,                                                               \
      (struct archive_entry * a0, const char** a1, const void** a2, size_t* a3), (a0, a1, a2, a3), \
      ARCHIVE_FATAL)                                                                               \
    X(int, archive_entry_xattr_reset, (struct archive_entry * a0), (a0), 0)                        \
    X(const char*, archive_error_string, (struct archive * a0), (a0),                              \
      archive_library().error.c_str())                                                             \
    X(la_ssize_t, archive_read_data, (struct archive * a0, void* a1, size_t a2), (a0, a1, a2),     \
      ARCHIVE_FATAL)                                                                               \
    X(int, archive_read_data_block,                                                                \
      (struct archive * a0, const void** a1, size_t* a2, la_int64_t* a3), (a0, a1, a2, a3),        \
      ARCHIVE_FATAL)                                                                               \
    X(int, archive_read_free, (struct archive * a0), (a0), ARCHIVE_FATAL)                          \
    X(struct archive*, archive_read_new, (), (), nullptr)                                          \
    X(int, archive_read_next_header, (struct archive * a0, struct archive_entry * *a1), (a0, a1),  \
      ARCHIVE_FATAL)                                                                               \
    X(int, archive_read_open,                                                                      \
      (struct archive * a0, void* a1, archive_open_callback* a2, archive_read_callback* a3,        \
       archive_close_callback* a4),                                                                \
      (a0, a1, a2, a3, a4), ARCHIVE_FATAL)                                                         \
    X(int, archive_read_open_filename, (struct archive * a0, const char* a1, size_t a2),           \
      (a0, a1, a2), ARCHIVE_FATAL)                                                                 \
    X(int, archive_read_open_memory, (struct archive * a0, const void* a1, size_t a2),             \
      (a0, a1, a2), ARCHIVE_FATAL)                                                                 \
    X(int, archive_read_support_filter_none, (struct archive * a0), (a0), ARCHIVE_FATAL)           \
    X(int, archive_read_support_format_tar, (struct archive * a0), (a0), ARCHIVE_FATAL)            \
    X(int, archive_read_support_format_zip_seekable, (struct archive * a0), (a0), ARCHIVE_FATAL)   \
    X(int, archive_write_add_filter_none, (struct archive * a0), (a0), ARCHIVE_FATAL)              \
    X(int, archive_write_close, (struct archive * a0), (a0), ARCHIVE_FATAL)                        \
    X(la_ssize_t, archive_write_data, (struct archive * a0, const void* a1, size_t a2),            \
      (a0, a1, a2), ARCHIVE_FATAL)                                                                 \
    X(int, archive_write_free, (struct archive * a0), (a0), ARCHIVE_FATAL)                         \
    X(int, archive_write_header, (struct archive * a0, struct archive_entry * a1), (a0, a1),       \
      ARCHIVE_FATAL)                                                                               \
    X(struct archive*, archive_write_new, (), (), nullptr)                                         \
    X(int, archive_write_open_fd, (struct archive * a0, int a1), (a0, a1), ARCHIVE_FATAL)          \
    X(int, archive_write_open_filename, (struct archive * a0, const char* a1), (a0, a1),           \
      ARCHIVE_FATAL)                                                                               \
    X(int, archive_write_set_bytes_in_last_block, (struct archive * a0, int a1), (a0, a1),         \
      ARCHIVE_FATAL)                                                                               \
    X(int, archive_write_set_format_pax_restricted, (struct archive * a0), (a0), ARCHIVE_FATAL)

namespace factory {
namespace {

struct Archive {
#define FACTORY_ARCHIVE_MEMBER(ret, name, params, args, fallback) decltype(&::name) name = nullptr;
    FACTORY_ARCHIVE_FUNCTIONS(FACTORY_ARCHIVE_MEMBER)
#undef FACTORY_ARCHIVE_MEMBER
    decltype(&::archive_set_error) archive_set_error = nullptr;
    bool loaded = false;
    std::string error;
};

const Archive& archive_library() {
    static const Archive a = [] {
        Archive a;
        DynamicLibrary lib("libarchive.so.13", "libarchive");
#define FACTORY_ARCHIVE_BIND(ret, name, params, args, fallback) lib.bind(a.name, #name);
        FACTORY_ARCHIVE_FUNCTIONS(FACTORY_ARCHIVE_BIND)
#undef FACTORY_ARCHIVE_BIND
        lib.bind(a.archive_set_error, "archive_set_error");
        a.loaded = lib.ok();
        a.error = lib.error();
        return a;
    }();
    return a;
}

} // namespace

std::string archive_load_error() {
    return archive_library().error;
}

std::string archive_null_error() {
    const auto& a = archive_library();
    return a.loaded ? "libarchive: out of memory" : a.error;
}

} // namespace factory

using factory::archive_library;

extern "C" {

#define FACTORY_ARCHIVE_DEFINE(ret, name, params, args, fallback)                                  \
    ret name params {                                                                              \
        const auto& a = archive_library();                                                         \
        return a.loaded ? a.name args : fallback;                                                  \
    }
FACTORY_ARCHIVE_FUNCTIONS(FACTORY_ARCHIVE_DEFINE)
#undef FACTORY_ARCHIVE_DEFINE

// Variadic: the message is formatted here and handed on as one "%s" argument.
void archive_set_error(struct archive* archive, int error, const char* format, ...) {
    const auto& a = archive_library();
    if (!a.loaded) return;
    char message[1024];
    va_list ap;
    va_start(ap, format);
    std::vsnprintf(message, sizeof message, format, ap);
    va_end(ap);
    a.archive_set_error(archive, error, "%s", message);
}

} // extern "C"
