#include "factory/registry/base.hpp"

#include "factory/registry/pull.hpp"
#include "factory/registry/reference.hpp"

namespace factory::registry {

PullPolicy parse_pull_policy(const std::string& text) {
    if (text == "never") return PullPolicy::never;
    if (text == "missing") return PullPolicy::missing;
    if (text == "always") return PullPolicy::always;
    throw usage_error("--pull " + text + ": expected never, missing or always");
}

namespace {

// The stored image of a ref name, when its manifest is in the store.
std::optional<oci::Descriptor> stored(const oci::Layout& store, const std::string& name,
                                      const oci::Platform& platform) {
    auto d = store.resolve(name, platform);
    if (!d || !store.blobs().has(d->sha256_hex().value_or(""))) return std::nullopt;
    return d;
}

} // namespace

oci::Descriptor resolve_and_pull(const std::string& reference, oci::Layout& store,
                                 const oci::Platform& platform, const BaseOptions& options) {
    auto ref = value_or_throw(parse_reference(reference), ExitCode::usage);
    auto name = ref.str();
    auto* progress = options.client.progress;
    auto report = [&](const oci::Descriptor& d, const char* how) {
        if (progress) progress->event("base", name + " → " + d.digest + " (" + how + ")");
        return d;
    };
    auto have = stored(store, name, platform);
    if (options.policy == PullPolicy::never) {
        if (!have)
            throw Error("base " + name +
                        " is not in the store and --pull is never (run factory "
                        "pull " +
                        name + ")");
        return report(*have, "store");
    }
    if (have && !ref.digest.empty() && options.policy == PullPolicy::missing)
        return report(*have, "store");
    Client client(ref.api_host(), options.client);
    if (options.policy == PullPolicy::missing) {
        auto target = resolve_manifest(client, ref, platform);
        if (have && have->digest == target.digest) return report(*have, "unchanged");
    }
    PullOptions pull_options;
    pull_options.platform = platform;
    pull_options.progress = progress;
    auto pulled = pull(client, ref, store, pull_options);
    return report(pulled.manifest_desc, "pulled");
}

std::optional<oci::Descriptor> peek_base(const std::string& reference,
                                         const oci::Platform& platform,
                                         const ClientOptions& options) {
    auto ref = value_or_throw(parse_reference(reference), ExitCode::usage);
    if (!ref.digest.empty()) return std::nullopt;
    Client client(ref.api_host(), options);
    return resolve_manifest(client, ref, platform);
}

} // namespace factory::registry
