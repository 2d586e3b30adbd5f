#include "factory/registry/reference.hpp"

#include <cctype>

#include "factory/oci/digest.hpp"
#include "factory/oci/reference.hpp"

namespace factory::registry {

namespace {

bool valid_host(std::string_view h) {
    auto colon = h.rfind(':');
    if (colon != std::string_view::npos && h.find(']', colon) == std::string_view::npos) {
        auto port = h.substr(colon + 1);
        if (port.empty() || port.size() > 5) return false;
        for (char c : port)
            if (c < '0' || c > '9') return false;
        h = h.substr(0, colon);
    }
    if (h.starts_with('[')) {
        if (!h.ends_with(']') || h.size() < 3) return false;
        for (char c : h.substr(1, h.size() - 2))
            if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':')) return false;
        return true;
    }
    std::size_t start = 0;
    for (;;) {
        auto dot = h.find('.', start);
        auto comp = h.substr(start, dot == std::string_view::npos ? h.npos : dot - start);
        if (comp.empty() || !std::isalnum(static_cast<unsigned char>(comp.front())) ||
            !std::isalnum(static_cast<unsigned char>(comp.back())))
            return false;
        for (char c : comp)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

bool valid_tag(std::string_view t) {
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (t.empty() || t.size() > 128 || !word(t[0])) return false;
    for (char c : t)
        if (!word(c) && c != '.' && c != '-') return false;
    return true;
}

bool is_host_component(std::string_view first) {
    return first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
           first.starts_with('[');
}

} // namespace

std::string Reference::str() const {
    std::string s = host + "/" + repository;
    if (!tag.empty()) s += ":" + tag;
    if (!digest.empty()) s += "@" + digest;
    return s;
}

std::string Reference::api_host() const {
    return host == "docker.io" ? "registry-1.docker.io" : host;
}

bool looks_like_reference(std::string_view text) {
    if (text.starts_with("docker://")) return true;
    auto slash = text.find('/');
    return slash != std::string_view::npos && is_host_component(text.substr(0, slash));
}

Result<Reference> parse_reference(std::string_view text) {
    std::string quoted = "'" + std::string(text) + "'";
    std::string_view rest = text;
    if (rest.starts_with("docker://")) rest.remove_prefix(9);
    if (rest.size() > 512) return Unexpected("reference " + quoted + " is too long");
    Reference ref;
    if (auto at = rest.find('@'); at != std::string_view::npos) {
        auto d = oci::Digest::parse(rest.substr(at + 1));
        if (!d || !d->is_sha256())
            return Unexpected("reference " + quoted +
                              ": invalid digest (expected sha256:<64 hex>)");
        ref.digest = d->str();
        rest = rest.substr(0, at);
    }
    auto slash = rest.find('/');
    if (slash != std::string_view::npos && is_host_component(rest.substr(0, slash))) {
        ref.host = std::string(rest.substr(0, slash));
        if (!valid_host(ref.host))
            return Unexpected("reference " + quoted + ": invalid registry host '" + ref.host + "'");
        rest = rest.substr(slash + 1);
    } else {
        ref.host = "docker.io";
    }
    auto last_slash = rest.rfind('/');
    auto colon = rest.rfind(':');
    if (colon != std::string_view::npos &&
        (last_slash == std::string_view::npos || colon > last_slash)) {
        ref.tag = std::string(rest.substr(colon + 1));
        if (!valid_tag(ref.tag))
            return Unexpected("reference " + quoted + ": invalid tag '" + ref.tag + "'");
        rest = rest.substr(0, colon);
    }
    if (rest.empty()) return Unexpected("reference " + quoted + ": no repository");
    std::size_t start = 0;
    for (;;) {
        auto next = rest.find('/', start);
        auto comp = rest.substr(start, next == std::string_view::npos ? rest.npos : next - start);
        if (!oci::valid_path_component(comp))
            return Unexpected("reference " + quoted + ": invalid repository component '" +
                              std::string(comp) + "' (lower-case letters, digits, '.', '_', '-')");
        if (next == std::string_view::npos) break;
        start = next + 1;
    }
    ref.repository = std::string(rest);
    if (ref.repository.size() > 255)
        return Unexpected("reference " + quoted + ": repository name over 255 characters");
    if (ref.host == "docker.io" && ref.repository.find('/') == std::string::npos)
        ref.repository = "library/" + ref.repository;
    if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
    return ref;
}

} // namespace factory::registry
