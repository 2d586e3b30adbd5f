// The libcurl functions factory calls, each loading libcurl.so.4 on first use (curl_loader.hpp).
//
// The definitions below take curl.h's declarations (the compiler checks that they match) and
// forward to the loaded library. The variadic setters read their one argument by the type the
// option's number encodes, as libcurl itself does. The library is opened RTLD_LOCAL and never
// closed; the executable does not export these names (no -rdynamic), so libcurl's own calls
// never land here.

#include "factory/util/curl_loader.hpp"

#include "factory/util/dynamic_library.hpp"

#include <curl/curl.h>

#include <cstdarg>
#include <string>

namespace factory {
namespace {

// X(member, libcurl's name): every function factory takes from libcurl.
#define FACTORY_CURL_FUNCTIONS(X)                                                                  \
    X(global_init, curl_global_init)                                                               \
    X(easy_init, curl_easy_init)                                                                   \
    X(easy_setopt, curl_easy_setopt)                                                               \
    X(easy_perform, curl_easy_perform)                                                             \
    X(easy_getinfo, curl_easy_getinfo)                                                             \
    X(easy_cleanup, curl_easy_cleanup)                                                             \
    X(easy_strerror, curl_easy_strerror)                                                           \
    X(share_init, curl_share_init)                                                                 \
    X(share_setopt, curl_share_setopt)                                                             \
    X(share_cleanup, curl_share_cleanup)                                                           \
    X(slist_append, curl_slist_append)                                                             \
    X(slist_free_all, curl_slist_free_all)                                                         \
    X(url, curl_url)                                                                               \
    X(url_set, curl_url_set)                                                                       \
    X(url_get, curl_url_get)                                                                       \
    X(url_cleanup, curl_url_cleanup)                                                               \
    X(free, curl_free)

struct Curl {
#define FACTORY_CURL_MEMBER(member, name) decltype(&::name) member = nullptr;
    FACTORY_CURL_FUNCTIONS(FACTORY_CURL_MEMBER)
#undef FACTORY_CURL_MEMBER
    bool loaded = false;
    std::string error;
};

const Curl& curl() {
    static const Curl c = [] {
        Curl c;
        DynamicLibrary lib("libcurl.so.4", "libcurl");
#define FACTORY_CURL_BIND(member, name) lib.bind(c.member, #name);
        FACTORY_CURL_FUNCTIONS(FACTORY_CURL_BIND)
#undef FACTORY_CURL_BIND
        c.loaded = lib.ok();
        c.error = lib.error();
        return c;
    }();
    return c;
}

} // namespace

std::string curl_load_error() {
    return curl().error;
}

} // namespace factory

using factory::curl;

// The names are in parentheses: curl.h makes the variadic ones function-like macros.
extern "C" {

CURLcode(curl_global_init)(long flags) {
    const auto& c = curl();
    return c.loaded ? c.global_init(flags) : CURLE_FAILED_INIT;
}

CURL*(curl_easy_init)(void) {
    const auto& c = curl();
    return c.loaded ? c.easy_init() : nullptr;
}

CURLcode(curl_easy_setopt)(CURL* handle, CURLoption option, ...) {
    const auto& c = curl();
    if (!c.loaded) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT)
        rc = c.easy_setopt(handle, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_FUNCTIONPOINT)
        rc = c.easy_setopt(handle, option, va_arg(ap, void*));
    else if (option < CURLOPTTYPE_OFF_T)
        rc = c.easy_setopt(handle, option, va_arg(ap, void (*)()));
    else if (option < CURLOPTTYPE_BLOB)
        rc = c.easy_setopt(handle, option, va_arg(ap, curl_off_t));
    else
        rc = c.easy_setopt(handle, option, va_arg(ap, void*));
    va_end(ap);
    return rc;
}

CURLcode(curl_easy_perform)(CURL* handle) {
    const auto& c = curl();
    return c.loaded ? c.easy_perform(handle) : CURLE_FAILED_INIT;
}

// Every CURLINFO takes a pointer to where the answer goes.
CURLcode(curl_easy_getinfo)(CURL* handle, CURLINFO info, ...) {
    const auto& c = curl();
    if (!c.loaded) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    CURLcode rc = c.easy_getinfo(handle, info, va_arg(ap, void*));
    va_end(ap);
    return rc;
}

void(curl_easy_cleanup)(CURL* handle) {
    const auto& c = curl();
    if (c.loaded) c.easy_cleanup(handle);
}

const char*(curl_easy_strerror)(CURLcode code) {
    const auto& c = curl();
    return c.loaded ? c.easy_strerror(code) : c.error.c_str();
}

CURLSH*(curl_share_init)(void) {
    const auto& c = curl();
    return c.loaded ? c.share_init() : nullptr;
}

CURLSHcode(curl_share_setopt)(CURLSH* share, CURLSHoption option, ...) {
    const auto& c = curl();
    if (!c.loaded) return CURLSHE_NOT_BUILT_IN;
    va_list ap;
    va_start(ap, option);
    CURLSHcode rc;
    switch (option) {
    case CURLSHOPT_SHARE:
    case CURLSHOPT_UNSHARE:
        rc = c.share_setopt(share, option, va_arg(ap, int));
        break;
    case CURLSHOPT_LOCKFUNC:
    case CURLSHOPT_UNLOCKFUNC:
        rc = c.share_setopt(share, option, va_arg(ap, void (*)()));
        break;
    default:
        rc = c.share_setopt(share, option, va_arg(ap, void*));
        break;
    }
    va_end(ap);
    return rc;
}

CURLSHcode(curl_share_cleanup)(CURLSH* share) {
    const auto& c = curl();
    return c.loaded ? c.share_cleanup(share) : CURLSHE_INVALID;
}

curl_slist*(curl_slist_append)(curl_slist* list, const char* data) {
    const auto& c = curl();
    return c.loaded ? c.slist_append(list, data) : nullptr;
}

void(curl_slist_free_all)(curl_slist* list) {
    const auto& c = curl();
    if (c.loaded) c.slist_free_all(list);
}

CURLU*(curl_url)(void) {
    const auto& c = curl();
    return c.loaded ? c.url() : nullptr;
}

CURLUcode(curl_url_set)(CURLU* handle, CURLUPart what, const char* part, unsigned int flags) {
    const auto& c = curl();
    return c.loaded ? c.url_set(handle, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode(curl_url_get)(CURLU* handle, CURLUPart what, char** part, unsigned int flags) {
    const auto& c = curl();
    return c.loaded ? c.url_get(handle, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

void(curl_url_cleanup)(CURLU* handle) {
    const auto& c = curl();
    if (c.loaded) c.url_cleanup(handle);
}

void(curl_free)(void* p) {
    const auto& c = curl();
    if (c.loaded) c.free(p);
}

} // extern "C"
