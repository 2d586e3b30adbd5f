#include "factory/cli/image_source.hpp"

#include "cache/lock.hpp"
#include "factory/oci/import.hpp"
#include "factory/oci/media_types.hpp"
#include "factory/registry/base.hpp"
#include "factory/util/error.hpp"
#include "factory/util/progress.hpp"

namespace factory::cli {

namespace {

namespace fs = std::filesystem;

// "KIND:PATH[:TAG]": the path ends at the first ':' (as for -o).
std::pair<std::string, std::string> path_and_tag(std::string_view rest) {
    auto colon = rest.find(':');
    if (colon == std::string_view::npos) return {std::string(rest), ""};
    return {std::string(rest.substr(0, colon)), std::string(rest.substr(colon + 1))};
}

bool is_recipe(const std::string& spec) {
    std::error_code ec;
    return spec.ends_with(".toml") && fs::is_regular_file(spec, ec);
}

} // namespace

ImageSource resolve_image_source(const std::string& spec, oci::Layout& store,
                                 const builder::BuildOptions& options) {
    ImageSource out;
    out.name = spec;
    if (spec.starts_with("oci:") || spec.starts_with("oci-archive:")) {
        bool archive = spec.starts_with("oci-archive:");
        auto [path, tag] = path_and_tag(std::string_view(spec).substr(archive ? 12 : 4));
        auto imported = archive ? oci::import_oci_archive(path, tag, store.blobs())
                                : oci::import_oci_layout(path, tag, store.blobs());
        if (!imported) throw Error(spec + ": " + imported.error());
        out.manifest = imported->manifest_desc;
        return out;
    }
    if (spec.starts_with("docker-archive:")) {
        // "docker-archive:FILE[:NAME[:TAG]]": the path ends at the first ':', the rest may hold
        // a registry's port (as for -o).
        auto [path, name] = path_and_tag(std::string_view(spec).substr(15));
        auto imported = oci::import_docker_archive(path, name, store.blobs());
        if (!imported) throw Error(imported.error()); // it names the archive
        out.manifest = imported->manifest_desc;
        return out;
    }
    if (spec.starts_with("docker://")) {
        // Pulled into the store (blobs it has are not fetched again), as a base by reference
        // is: --pull and the registry options apply.
        auto lock = cache::StoreLock::build(options.store_root, {options.lock_timeout, {}});
        out.manifest = registry::resolve_and_pull(spec.substr(9), store, oci::host_platform(),
                                                  options.registry);
        return out;
    }
    if (is_recipe(spec)) {
        Progress quiet(ProgressMode::quiet);
        auto built = builder::build_recipe(spec, options, quiet);
        out.manifest.media_type = std::string(oci::media_type::manifest);
        out.manifest.digest = built.manifest_digest;
        out.manifest.size = static_cast<std::int64_t>(built.manifest_size);
        return out;
    }
    auto desc = store.resolve(spec); // also a manifest no ref names any more
    if (!desc)
        throw usage_error(
            "no image '" + spec + "' in the store " + options.store_root.string() +
            " (give NAME[:TAG], sha256:DIGEST, a recipe.toml, oci:DIR[:TAG], "
            "oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG])");
    out.manifest = *desc;
    return out;
}

} // namespace factory::cli
