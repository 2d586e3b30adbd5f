#pragma once
// libcurl, loaded on first use.
//
// factory is not linked against libcurl: factory/util/curl_loader.cpp defines the libcurl
// functions factory calls (with curl.h's own declarations, so call sites are plain libcurl) and
// each one loads libcurl.so.4 the first time any of them runs. libcurl's ~25 dependencies
// (OpenSSL, gnutls through librtmp, krb5, ldap, ...) cost ~8 ms of initializers at every start;
// a command that never reaches the network (a no-op build of a local recipe, `factory shell`,
// `factory --version`) now pays none of it. docs/performance.md "What start-up costs the no-op".
//
// When the library can't be loaded, every constructor returns null (curl_easy_init, curl_url,
// curl_share_init, curl_slist_append) and curl_global_init CURLE_FAILED_INIT; curl_load_error()
// then says why, for the caller's message.

#include <string>

namespace factory {

// Loads libcurl if no curl function has yet; empty when it is loaded, else what dlopen or dlsym
// said.
std::string curl_load_error();

} // namespace factory
