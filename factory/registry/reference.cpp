#include "factory/registry/reference.hpp"

#include "factory/oci/digest.hpp"
#include "factory/util/image_names.hpp"

namespace factory::registry {

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
    return slash != std::string_view::npos && names_a_registry(text.substr(0, slash));
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
    if (slash != std::string_view::npos && names_a_registry(rest.substr(0, slash))) {
        ref.host = std::string(rest.substr(0, slash));
        if (!is_registry_host(ref.host))
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
        if (!is_image_tag(ref.tag))
            return Unexpected("reference " + quoted + ": invalid tag '" + ref.tag + "'");
        rest = rest.substr(0, colon);
    }
    if (rest.empty()) return Unexpected("reference " + quoted + ": no repository");
    std::size_t start = 0;
    for (;;) {
        auto next = rest.find('/', start);
        auto comp = rest.substr(start, next == std::string_view::npos ? rest.npos : next - start);
        if (!is_path_component(comp))
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
