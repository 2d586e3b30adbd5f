#include "factory/builder/base_registry.hpp"

#include "factory/sources/trust.hpp"

namespace factory::builder {

registry::BaseOptions base_registry_options(const BuildOptions& options, Progress* progress) {
    auto out = options.registry;
    out.client.progress = progress;
    if (out.client.tls.verify && out.client.tls.ca_file.empty())
        out.client.tls.ca_file = sources::host_ca_bundle();
    if (options.offline) out.policy = registry::PullPolicy::never;
    return out;
}

} // namespace factory::builder
