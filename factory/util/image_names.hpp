#pragma once
// The pieces of distribution/reference's grammar of image names, in one place for the recipe's
// checks, the names of docker-archives and registry references.

#include <string_view>

namespace factory {

// path-component := [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, one '/'-separated part of a repository.
bool is_path_component(std::string_view component) noexcept;

// tag := [A-Za-z0-9_][A-Za-z0-9._-]{0,127}
bool is_image_tag(std::string_view tag) noexcept;

// domain-component := [A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9] (one label of a host name)
bool is_domain_component(std::string_view label) noexcept;

// A registry: host[:port], the host being domain components [A-Za-z0-9]([A-Za-z0-9-]*
// [A-Za-z0-9])? joined by '.', or a bracketed IPv6 address ("[::1]"); the port 0..65535 in
// decimal.
bool is_registry_host(std::string_view host) noexcept;

// Whether the first '/'-separated component of a name names a registry, as docker decides it:
// it holds a '.' or a ':', is "localhost", or is a bracketed IPv6 address.
bool names_a_registry(std::string_view first_component) noexcept;

} // namespace factory
