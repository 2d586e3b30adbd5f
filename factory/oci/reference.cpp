#include "factory/oci/reference.hpp"

#include "factory/oci/json_fields.hpp"
#include "factory/util/image_names.hpp"

namespace factory::oci {

namespace {

bool is_64_hex(std::string_view s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

} // namespace

std::string DockerReference::familiar_name() const {
    if (domain != "docker.io") return domain + "/" + path;
    if (path.starts_with("library/") && path.find('/', 8) == std::string::npos)
        return path.substr(8);
    return path;
}

Result<DockerReference> parse_docker_reference(std::string_view text) {
    auto bad = [&](const std::string& why) -> Result<DockerReference> {
        return Unexpected("invalid image reference " + detail::quote(text) + ": " + why);
    };
    if (text.find('@') != std::string_view::npos)
        return bad("a digest reference can't name an image in an archive");
    std::string_view name = text;
    DockerReference ref;
    ref.tag = "latest";
    auto colon = text.rfind(':');
    auto slash = text.rfind('/');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
        ref.tag = std::string(text.substr(colon + 1));
        name = text.substr(0, colon);
        if (!is_image_tag(ref.tag)) return bad("invalid tag " + detail::quote(ref.tag));
    }
    if (name.empty()) return bad("empty name");
    if (name.size() > 255) return bad("name longer than 255 characters");
    if (is_64_hex(name)) return bad("a 64-hex name would be taken for an image ID");
    // splitDockerDomain
    auto first = name.find('/');
    std::string_view remainder = name;
    ref.domain = "docker.io";
    if (first != std::string_view::npos) {
        auto head = name.substr(0, first);
        bool lower = true;
        for (char c : head)
            if (c >= 'A' && c <= 'Z') lower = false;
        if (head.find_first_of(".:") != std::string_view::npos || head == "localhost" || !lower) {
            ref.domain = std::string(head);
            remainder = name.substr(first + 1);
        }
    }
    if (ref.domain == "index.docker.io") ref.domain = "docker.io";
    if (!is_registry_host(ref.domain)) return bad("invalid registry " + detail::quote(ref.domain));
    ref.path = std::string(remainder);
    if (ref.domain == "docker.io" && ref.path.find('/') == std::string::npos)
        ref.path = "library/" + ref.path;
    for (char c : ref.path)
        if (c >= 'A' && c <= 'Z') return bad("repository names must be lower case");
    std::size_t start = 0;
    for (;;) {
        auto s = ref.path.find('/', start);
        auto comp = std::string_view(ref.path).substr(
            start, s == std::string::npos ? std::string::npos : s - start);
        if (!is_path_component(comp)) return bad("invalid path component " + detail::quote(comp));
        if (s == std::string::npos) break;
        start = s + 1;
    }
    return ref;
}

} // namespace factory::oci
