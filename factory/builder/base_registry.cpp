#include "factory/builder/base_registry.hpp"

#include "factory/sources/trust.hpp"

namespace factory::builder {

registry::BaseOptions base_registry_options(const BuildOptions& options, Progress* progress) {
    auto out = options.registry;
    out.client.progress = progress;
    out.client.default_ca_file = sources::host_ca_bundle(); // unless --tls-ca or registries.toml
    if (options.offline) out.policy = registry::PullPolicy::never;
    return out;
}

} // namespace factory::builder
