#include "factory/registry/client.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "factory/util/interrupt.hpp"

namespace factory::registry {

namespace {

using Json = nlohmann::json;

bool is_redirect(long status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool is_ip_literal(const std::string& host) {
    if (host.find(':') != std::string::npos || host.starts_with('[')) return true;
    return !host.empty() && std::all_of(host.begin(), host.end(),
                                        [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// The last two labels of a DNS name ("auth.docker.io" → "docker.io").
std::string parent_domain(const std::string& host) {
    auto last = host.rfind('.');
    if (last == std::string::npos || last == 0) return host;
    auto prev = host.rfind('.', last - 1);
    return prev == std::string::npos ? host : host.substr(prev + 1);
}

std::string host_without_port(const std::string& host) {
    if (host.starts_with('[')) return host.substr(0, host.find(']') + 1);
    auto colon = host.rfind(':');
    return colon == std::string::npos ? host : host.substr(0, colon);
}

// The host that auth files and `factory login` name for a registry host.
std::string auth_host(const std::string& host) {
    return host == "registry-1.docker.io" ? "docker.io" : host;
}

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// "MANIFEST_UNKNOWN: manifest unknown" from a distribution-spec error body, or "".
std::string registry_error(const std::string& body) {
    auto j = Json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("errors") || !j["errors"].is_array() ||
        j["errors"].empty() || !j["errors"][0].is_object())
        return {};
    const auto& e = j["errors"][0];
    std::string out;
    if (e.contains("code") && e["code"].is_string()) out = e["code"].get<std::string>();
    if (e.contains("message") && e["message"].is_string()) {
        auto m = e["message"].get<std::string>();
        if (m.size() > 200) m = m.substr(0, 200) + "…";
        out += (out.empty() ? "" : ": ") + m;
    }
    return out;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : sep) + s;
    return out;
}

std::string seconds_text(Seconds s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fs", s.count());
    return buf;
}

// options with the settings the registries config has for host.
ClientOptions for_host(const std::string& host, ClientOptions o) {
    const auto* h = o.registries ? o.registries->find(host) : nullptr;
    if (h && !h->ca.empty() && o.tls.ca_file.empty()) o.tls.ca_file = h->ca;
    if (h && h->insecure && !o.tls_verify_given && o.tls.verify) {
        o.tls.verify = false;
        warn_insecure(host, "insecure = true in " + o.registries->file.string());
    }
    if (o.tls.verify && o.tls.ca_file.empty()) o.tls.ca_file = o.default_ca_file;
    return o;
}

} // namespace

Client::Client(std::string host, ClientOptions options)
    : host_(std::move(host)), options_(for_host(host_, std::move(options))),
      http_(options_.tls, options_.connect_timeout, options_.stall_timeout),
      rng_(std::random_device{}()) {}

std::string Client::scope_for(const std::string& repository, Access access) const {
    return "repository:" + repository + (access == Access::push ? ":pull,push" : ":pull");
}

std::optional<Credentials> Client::credentials(const std::string& repository) {
    if (options_.credentials) return options_.credentials;
    std::lock_guard lock(mutex_);
    auto it = creds_.find(repository);
    if (it == creds_.end()) {
        it = creds_.emplace(repository, find_credentials(auth_host(host_), repository)).first;
    }
    return it->second;
}

void Client::ping() {
    std::lock_guard ping_lock(ping_mutex_);
    {
        std::lock_guard lock(mutex_);
        if (!base_.empty()) return;
    }
    std::vector<std::string> candidates{"https://" + host_ + "/v2/"};
    // An insecure registry may speak plain HTTP: tried after HTTPS, like containers/image.
    if (!options_.tls.verify) candidates.push_back("http://" + host_ + "/v2/");
    Operation op{"", "GET /v2/"};
    Retry retry(*this, op);
    for (;;) {
        HttpResponse last;
        for (const auto& url : candidates) {
            HttpRequest req;
            req.url = url;
            last = http_.send(req);
            if (last.status != 0) {
                std::lock_guard lock(mutex_);
                base_ = url;
                break;
            }
            // A plain-HTTP server answers a TLS ClientHello at once (with an error); one that
            // says nothing for --timeout is down or stuck, and plain HTTP would only wait as
            // long again.
            if (last.timed_out()) break;
        }
        if (last.status != 0) {
            if (last.status == 401) learn_challenge(last);
            return;
        }
        if (!retry.again(last)) fail(op, last, retry.attempts(), retry.elapsed());
    }
}

std::string Client::api_base() {
    ping();
    std::lock_guard lock(mutex_);
    return base_;
}

void Client::learn_challenge(const HttpResponse& resp) {
    auto header = resp.header("www-authenticate");
    if (header.empty()) return;
    auto parsed = parse_www_authenticate(header);
    if (!parsed) return; // treated as no usable challenge: the 401 is reported as it is
    std::lock_guard lock(mutex_);
    for (const auto& c : *parsed) {
        if (c.scheme == "bearer" || c.scheme == "basic") {
            challenge_ = c;
            return;
        }
    }
}

void Client::check_realm(const Url& realm) const {
    auto registry = lower(host_without_port(host_));
    bool same = realm.host == registry;
    bool sibling = !is_ip_literal(registry) && !is_ip_literal(realm.host) &&
                   parent_domain(realm.host) == parent_domain(registry) &&
                   parent_domain(registry).find('.') != std::string::npos;
    if (!same && !sibling)
        throw Error("registry " + host_ + ": the token realm is on another host (" + realm.host +
                    "); factory sends credentials only to the registry's own domain");
    if (realm.scheme != "https" && options_.tls.verify)
        throw Error("registry " + host_ + ": the token realm " + realm.origin() +
                    " is not HTTPS; use --tls-verify=false for a local test registry");
}

std::string Client::fetch_token(const Challenge& challenge, const std::optional<Credentials>& creds,
                                const std::vector<std::string>& scopes) {
    auto realm_text = challenge.param("realm");
    auto realm = parse_url(realm_text);
    if (realm_text.empty() || !realm)
        throw Error("registry " + host_ + ": the Bearer challenge has no usable realm");
    check_realm(*realm);
    std::string query;
    auto add = [&](const char* k, const std::string& v) {
        query += (query.empty() ? "" : "&") + std::string(k) + "=" + url_escape(v);
    };
    if (auto s = challenge.param("service"); !s.empty()) add("service", s);
    for (const auto& s : scopes)
        add("scope", s);
    HttpRequest req;
    if (creds && !creds->identity_token.empty()) {
        // OAuth2 refresh-token grant (distribution docs/spec/auth/oauth.md).
        req.method = "POST";
        req.url = realm_text;
        add("grant_type", "refresh_token");
        add("client_id", "factory");
        add("refresh_token", creds->identity_token);
        req.body = query;
        req.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    } else {
        req.url = realm_text + (realm_text.find('?') == std::string::npos ? "?" : "&") + query;
        if (creds)
            req.headers.push_back("Authorization: Basic " +
                                  base64_encode(creds->username + ":" + creds->password));
    }
    req.max_body = 1u << 20;
    Operation op{"", "token for " + (scopes.empty() ? std::string("login") : join(scopes, " "))};
    Retry retry(*this, op);
    for (;;) {
        auto resp = http_.send(req);
        if (resp.ok()) {
            auto j = Json::parse(resp.body, nullptr, false);
            std::string token;
            if (j.is_object() && j.contains("token") && j["token"].is_string())
                token = j["token"].get<std::string>();
            else if (j.is_object() && j.contains("access_token") && j["access_token"].is_string())
                token = j["access_token"].get<std::string>();
            if (token.empty() || token.size() > (64u << 10) ||
                token.find_first_of("\r\n") != std::string::npos)
                throw Error(error_message(op, "the token server's answer has no usable token"));
            long expires = 60;
            if (j.contains("expires_in") && j["expires_in"].is_number_integer())
                expires = std::clamp<long>(j["expires_in"].get<long>(), 1, 86400);
            std::lock_guard lock(mutex_);
            auto now = std::chrono::steady_clock::now();
            tokens_[join(scopes, " ")] = {token, now + std::chrono::seconds(expires * 9 / 10), now};
            return token;
        }
        if (resp.status == 401 || resp.status == 403)
            throw Error(
                error_message(op, "HTTP " + std::to_string(resp.status) +
                                      (creds ? " (credentials from " + creds->source + " refused)"
                                             : " (no credentials; factory login " + host_ + ")")));
        if (!retry.again(resp)) fail(op, resp, retry.attempts(), retry.elapsed());
    }
}

bool Client::fetched_after(const std::vector<std::string>& scopes,
                           std::chrono::steady_clock::time_point when) {
    std::lock_guard lock(mutex_);
    auto it = tokens_.find(join(scopes, " "));
    return it != tokens_.end() && it->second.fetched > when;
}

std::optional<std::string> Client::authorization(const std::string& repository,
                                                 const std::vector<std::string>& scopes,
                                                 bool force_new) {
    std::optional<Challenge> challenge;
    {
        std::lock_guard lock(mutex_);
        challenge = challenge_;
    }
    if (!challenge) return std::nullopt;
    auto creds = credentials(repository);
    if (challenge->scheme == "basic") {
        if (!creds || creds->username.empty()) return std::nullopt;
        return "Basic " + base64_encode(creds->username + ":" + creds->password);
    }
    auto cached = [&]() -> std::optional<std::string> {
        std::lock_guard lock(mutex_);
        auto it = tokens_.find(join(scopes, " "));
        if (it != tokens_.end() && it->second.expires > std::chrono::steady_clock::now())
            return "Bearer " + it->second.value;
        return std::nullopt;
    };
    auto now = std::chrono::steady_clock::now();
    if (!force_new)
        if (auto t = cached()) return t;
    // One fetch at a time: the threads of a push that all miss wait for the first one's token
    // instead of asking the token server once each.
    std::lock_guard fetch_lock(token_fetch_mutex_);
    if (auto t = cached(); t && (!force_new || fetched_after(scopes, now))) return t;
    return "Bearer " + fetch_token(*challenge, creds, scopes);
}

HttpResponse Client::follow(const Operation& op, HttpRequest req,
                            const std::optional<std::string>& auth) {
    auto base = parse_url(api_base());
    std::string registry_origin = base ? base->origin() : "";
    HttpResponse resp;
    for (int hop = 0; hop <= 5; ++hop) {
        auto url = parse_url(req.url);
        if (!url) throw Error(error_message(op, "bad URL: " + url.error()));
        HttpRequest r = req;
        // Credentials go to the registry's own origin only, never to where it redirects.
        if (auth && url->origin() == registry_origin)
            r.headers.push_back("Authorization: " + *auth);
        resp = http_.send(r);
        if (!is_redirect(resp.status)) return resp;
        auto location = resp.header("location");
        if (location.empty()) return resp;
        auto next = resolve_url(req.url, location);
        if (!next) throw Error(error_message(op, "redirect to a malformed Location"));
        req.url = *next;
        if (resp.status == 303) {
            req.method = "GET";
            req.body.clear();
            req.body_fd = -1;
        }
    }
    throw Error(error_message(op, "more than 5 redirects"));
}

HttpResponse Client::send_once(const Operation& op, HttpRequest req, Access access,
                               const std::vector<std::string>& extra_scopes) {
    if (!req.url.starts_with("http://") && !req.url.starts_with("https://"))
        req.url = api_base() + req.url;
    std::vector<std::string> scopes{scope_for(op.repository, access)};
    scopes.insert(scopes.end(), extra_scopes.begin(), extra_scopes.end());
    auto auth = authorization(op.repository, scopes, false);
    auto resp = follow(op, req, auth);
    if (resp.status != 401) return resp;
    // A first 401 (no challenge known yet) or insufficient_scope: one new token, one resend.
    learn_challenge(resp);
    auto again = authorization(op.repository, scopes, true);
    if (!again) return resp;
    return follow(op, req, again);
}

HttpResponse Client::send(const Operation& op, HttpRequest req, Access access,
                          const std::vector<std::string>& extra_scopes) {
    Retry retry(*this, op);
    for (;;) {
        auto resp = send_once(op, req, access, extra_scopes);
        if (resp.ok() || resp.too_large) return resp;
        if (resp.curl_code == 0 && resp.status != 0 && !retryable_status(resp.status)) return resp;
        if (!retry.again(resp)) fail(op, resp, retry.attempts(), retry.elapsed());
    }
}

std::string Client::error_message(const Operation& op, const std::string& detail) const {
    std::string msg = "registry " + host_;
    if (!op.repository.empty()) msg += ": repository " + op.repository;
    return msg + ": " + op.what + ": " + detail;
}

std::string Client::unauthorized_hint(const std::string& repository) const {
    std::optional<Credentials> creds = options_.credentials;
    if (!creds) {
        std::unique_lock lock(mutex_);
        auto it = creds_.find(repository);
        if (it != creds_.end()) {
            creds = it->second;
        } else {
            // No request of this repository looked them up (the registry sent no challenge).
            lock.unlock();
            try {
                creds = find_credentials(auth_host(host_), repository);
            } catch (const std::exception&) {
                return {};
            }
        }
    }
    if (creds) return "; credentials from " + creds->source + " refused by the registry";
    auto login = auth_host(host_);
    return "; no credentials found for " + login + "; log in with `factory login " + login + "`";
}

void Client::fail(const Operation& op, const HttpResponse& resp, int attempts,
                  Seconds elapsed) const {
    std::string detail = resp.describe();
    if (resp.curl_code == 0 && resp.status >= 400) {
        auto code = registry_error(resp.body);
        if (!code.empty()) detail += " (" + code + ")";
    }
    if (resp.curl_code == 0 && resp.status == 401) detail += unauthorized_hint(op.repository);
    if (attempts > 1)
        detail +=
            "; gave up after " + std::to_string(attempts) + " attempts in " + seconds_text(elapsed);
    throw Error(error_message(op, detail));
}

Client::Retry::Retry(Client& client, const Operation& op)
    : client_(client), op_(op), start_(std::chrono::steady_clock::now()) {}

Seconds Client::Retry::elapsed() const {
    return std::chrono::duration_cast<Seconds>(std::chrono::steady_clock::now() - start_);
}

bool Client::Retry::again(const HttpResponse& resp) {
    bool retryable = resp.curl_code != 0 ? resp.retryable_transport()
                                         : resp.status == 0 || retryable_status(resp.status);
    const auto& policy = client_.options_.retry;
    if (!retryable || attempts_ >= policy.max_attempts) return false;
    std::optional<Seconds> retry_after;
    if (auto h = resp.header("retry-after"); !h.empty()) retry_after = parse_retry_after(h);
    Seconds delay;
    {
        std::lock_guard lock(client_.mutex_);
        delay = backoff_delay(policy, attempts_ + 1, retry_after, client_.rng_);
    }
    if (elapsed() + delay > policy.max_total) return false;
    if (client_.options_.progress)
        client_.options_.progress->event("retry", client_.error_message(op_, resp.describe()) +
                                                      "; attempt " + std::to_string(attempts_ + 1) +
                                                      "/" + std::to_string(policy.max_attempts) +
                                                      " in " + seconds_text(delay));
    if (!sleep_unless_interrupted(std::chrono::duration_cast<std::chrono::milliseconds>(delay)))
        return false; // the caller reports this attempt's failure
    ++attempts_;
    return true;
}

void Client::check_login(const std::string& repository) {
    ping();
    std::optional<Challenge> challenge;
    {
        std::lock_guard lock(mutex_);
        challenge = challenge_;
    }
    if (!challenge) return; // an open registry: nothing to check
    auto creds = credentials(repository);
    if (challenge->scheme == "bearer") {
        fetch_token(*challenge, creds, {});
        return;
    }
    HttpRequest req;
    req.url = api_base();
    Operation op{"", "GET /v2/ (login)"};
    auto resp = follow(op, req, authorization(repository, {}, true));
    if (resp.status == 401 || resp.status == 403)
        throw Error(error_message(op, "HTTP " + std::to_string(resp.status) +
                                          ": the registry refused the credentials"));
    if (!resp.ok()) fail(op, resp);
}

} // namespace factory::registry
