#pragma once
// The registry options a build asks for its bases with (kind_registry.cpp, lock.cpp).

#include "factory/builder/builder.hpp"
#include "factory/registry/base.hpp"
#include "factory/util/progress.hpp"

namespace factory::builder {

// The build's registry flags, with the host's trust store (sources/trust.hpp) when verifying
// and no --tls-ca was given — as git mirrors and downloads use it —, and `--pull never` under
// --offline.
registry::BaseOptions base_registry_options(const BuildOptions& options, Progress* progress);

} // namespace factory::builder
