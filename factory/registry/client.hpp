#pragma once
// A registry's HTTP API as the distribution-spec defines it, with what every request needs
// around it: the endpoint (https, or plain http for an insecure registry), authentication
// (anonymous, Basic, Bearer tokens cached per scope), redirects that never carry credentials to
// another origin, and retries with backoff (retry.hpp). One Client per registry host; it is
// thread-safe (blobs are transferred from several threads).
//
// Errors name the registry, the repository, the operation and the last HTTP status (with the
// registry's error code) or curl error, and never a credential or token.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "factory/registry/config.hpp"
#include "factory/registry/credentials.hpp"
#include "factory/registry/http.hpp"
#include "factory/registry/retry.hpp"
#include "factory/registry/www_authenticate.hpp"
#include "factory/util/progress.hpp"

namespace factory::registry {

struct ClientOptions {
    TlsOptions tls;
    // The per-registry settings (config.hpp): a host listed there gets its ca (unless tls has
    // one) and, with insecure = true, no verification (unless tls_verify_given).
    std::shared_ptr<const RegistriesConfig> registries;
    bool tls_verify_given = false; // tls.verify was asked for explicitly (--tls-verify)
    // The CA bundle for a host that neither tls nor the registries config gives one (a build's
    // bases: the host's trust store); "" = libcurl's default.
    std::string default_ca_file;
    RetryPolicy retry;
    Seconds connect_timeout{30};
    Seconds stall_timeout{30};
    Progress* progress = nullptr; // retries are reported as "retry" events
    // Credentials to use instead of the auth files (`factory login` checks these).
    std::optional<Credentials> credentials;
};

// What the requests of one operation may do in a repository (a token scope's actions).
enum class Access { pull, push };

// One logical request, for retries and messages: "GET manifest latest".
struct Operation {
    std::string repository;
    std::string what;
};

class Client {
  public:
    // host: as in a reference ("127.0.0.1:5000", "docker.io").
    Client(std::string host, ClientOptions options);

    const std::string& host() const noexcept { return host_; }
    const ClientOptions& options() const noexcept { return options_; }

    // "https://host/v2/" or "http://host/v2/": found by the first request (a ping of /v2/).
    // Throws Error when the registry can't be reached.
    std::string api_base();

    // Sends req (its url relative to api_base() unless absolute) with authentication for
    // repository (access) and any extra scopes, following up to 5 redirects, retrying as the
    // policy says. Returns the last response, 2xx or not (the caller decides what a 404 means),
    // unless retries ran out or a request could not be made at all: then throws Error.
    HttpResponse send(const Operation& op, HttpRequest req, Access access,
                      const std::vector<std::string>& extra_scopes = {});

    // One attempt of send() without retries (for callers that resume between attempts).
    HttpResponse send_once(const Operation& op, HttpRequest req, Access access,
                           const std::vector<std::string>& extra_scopes = {});

    // Throws the final error of op for a response: "registry H: repository R: WHAT: HTTP 404
    // (MANIFEST_UNKNOWN: manifest unknown)". `attempts` > 1 adds " after N attempts in Ts". A
    // 401 adds where the credentials came from ("; credentials from FILE refused by the
    // registry"), or that none were found and how to log in.
    [[noreturn]] void fail(const Operation& op, const HttpResponse& resp, int attempts = 1,
                           Seconds elapsed = Seconds(0)) const;
    // The message part of fail() (no throw).
    std::string error_message(const Operation& op, const std::string& detail) const;

    // Decides after a failed attempt whether to try again, and waits the backoff if so.
    class Retry {
      public:
        Retry(Client& client, const Operation& op);
        // resp: the failed attempt. True: wait done, try again. False: give up.
        bool again(const HttpResponse& resp);
        int attempts() const noexcept { return attempts_; }
        Seconds elapsed() const;

      private:
        Client& client_;
        const Operation& op_;
        int attempts_ = 1;
        std::chrono::steady_clock::time_point start_;
    };

    // Verifies that the registry accepts the credentials (a token for pull on repository, or
    // /v2/ with Basic). Throws Error on 401/403.
    void check_login(const std::string& repository);

  private:
    struct Token {
        std::string value;
        std::chrono::steady_clock::time_point expires;
        std::chrono::steady_clock::time_point fetched;
    };
    // True if the token for scopes was fetched after `when` (by another thread).
    bool fetched_after(const std::vector<std::string>& scopes,
                       std::chrono::steady_clock::time_point when);
    std::string scope_for(const std::string& repository, Access access) const;
    // fail()'s words for a 401 in repository (the credentials' source, never a secret).
    std::string unauthorized_hint(const std::string& repository) const;
    void ping();
    std::optional<std::string> authorization(const std::string& repository,
                                             const std::vector<std::string>& scopes,
                                             bool force_new);
    std::string fetch_token(const Challenge& challenge, const std::optional<Credentials>& creds,
                            const std::vector<std::string>& scopes);
    void check_realm(const Url& realm) const;
    HttpResponse follow(const Operation& op, HttpRequest req,
                        const std::optional<std::string>& auth);
    void learn_challenge(const HttpResponse& resp);
    std::optional<Credentials> credentials(const std::string& repository);

    std::string host_;
    ClientOptions options_;
    Http http_;
    mutable std::mutex mutex_; // guards everything below
    std::string base_;         // api base, "" until pinged
    std::optional<Challenge> challenge_;
    std::map<std::string, Token> tokens_;                     // by the joined scopes
    std::map<std::string, std::optional<Credentials>> creds_; // by repository
    std::mutex ping_mutex_;
    std::mutex token_fetch_mutex_; // held while a token is fetched
    std::mt19937_64 rng_;
};

} // namespace factory::registry
