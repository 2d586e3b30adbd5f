#pragma once
// A remote's URL with its credentials taken out. `https://user:token@host/repo.git` is stored,
// keyed, configured and logged as `https://host/repo.git`; the user and password travel only in
// the environment of the one process that fetches (an Authorization header for that host), so
// they never land in a mirror's config, a cache key, a record, a layer or a log.

#include <string>
#include <vector>

#include "factory/util/error.hpp"

namespace factory::sources {

struct RemoteUrl {
    std::string url;      // without credentials: what is stored, keyed and printed
    std::string user;     // "" if none
    std::string password; // "" if none

    bool has_credentials() const { return !user.empty() || !password.empty(); }
};

// Splits "scheme://[user[:password]@]host…" (user and password percent-decoded). Other forms
// (scp-like "host:path", local paths) are kept whole, without credentials. Errors: an empty
// URL, a control character or a space in it.
Result<RemoteUrl> parse_remote_url(const std::string& url);

// "Authorization: Basic base64(user:password)".
std::string basic_auth_header(const RemoteUrl& remote);

// Resolves a submodule URL from .gitmodules against its superproject's URL the way git does:
// "./x" and "../x" are relative to the superproject's URL (a trailing "/" or ".git" is not
// stripped); anything else is returned as is.
std::string resolve_relative_url(const std::string& base, const std::string& relative);

} // namespace factory::sources
