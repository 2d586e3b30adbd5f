#include "factory/export/docker_archive.hpp"

#include <algorithm>

#include "factory/export/oci_export.hpp"
#include "factory/export/tar_writer.hpp"
#include "factory/oci/json.hpp"
#include "factory/oci/reference.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::exporter {

namespace {

std::string blob_path(const oci::Descriptor& d) {
    return "blobs/sha256/" + *d.sha256_hex();
}

// manifest.json as moby's json.NewEncoder(f).Encode([]manifestItem) writes it: Go field order
// Config, RepoTags, Layers (Parent and LayerSources are omitempty and not needed: every layer is
// in the archive), then a newline.
std::string manifest_json(const oci::Manifest& m, const oci::DockerReference& ref) {
    oci::Json item = oci::Json::object();
    item["Config"] = blob_path(m.config);
    item["RepoTags"] = oci::Json::array({ref.familiar()});
    item["Layers"] = oci::Json::array();
    for (const auto& l : m.layers)
        item["Layers"].push_back(blob_path(l));
    return oci::go_marshal(oci::Json::array({item})) + "\n";
}

// repositories: {"familiar name":{"tag":"<hex of the top layer's file>"}} + newline. Docker ≥25
// names the top layer's DiffID, which is its file name in a Docker archive; ours are named by
// blob digest, so we name that file (the config for an image without layers). Neither docker
// load nor podman reads this file when manifest.json is present.
std::string repositories_json(const oci::Manifest& m, const oci::DockerReference& ref) {
    auto top = m.layers.empty() ? *m.config.sha256_hex() : *m.layers.back().sha256_hex();
    oci::Json repos = oci::Json::object();
    repos[ref.familiar_name()] = oci::Json::object({{ref.tag, top}});
    return oci::go_marshal(repos) + "\n";
}

} // namespace

void export_docker_archive(const oci::Layout& store, const oci::Descriptor& image,
                           const fs::path& file, const std::string& reference) {
    auto ref = oci::parse_docker_reference(reference);
    if (!ref) throw usage_error("docker-archive:" + file.string() + ": " + ref.error());
    if (!oci::media_type::is_manifest(image.media_type))
        throw Error("docker-archive:" + file.string() + ": " + image.digest + " is a " +
                    image.media_type + "; a Docker archive holds a single-platform image");
    auto manifest = store.read_manifest(image);
    if (!manifest) throw Error(manifest.error());
    auto blobs = image_blobs(store, image);
    std::sort(blobs.begin(), blobs.end(), [](const oci::Descriptor& a, const oci::Descriptor& b) {
        return a.digest < b.digest;
    });

    oci::Index index;
    auto desc = output_descriptor(image);
    desc.platform.reset(); // Docker's save writes no platform in index.json
    desc.annotations[oci::annotation::containerd_image_name] = ref->full();
    desc.annotations[oci::annotation::ref_name] = ref->tag;
    index.manifests.push_back(desc);
    try {
        AtomicFile out(file, 0644);
        TarWriter tar(out.fd());
        tar.add_directory("blobs/");
        tar.add_directory("blobs/sha256/");
        for (const auto& d : blobs) {
            auto fd = store.blobs().open(*d.sha256_hex());
            if (!fd) throw Error(fd.error());
            tar.add_file_from_fd(blob_path(d), fd->get(), static_cast<std::uint64_t>(d.size),
                                 *d.sha256_hex());
        }
        tar.add_file("index.json", serialize(index));
        tar.add_file("manifest.json", manifest_json(*manifest, *ref));
        // moby writes this constant with a space after the colon.
        tar.add_file("oci-layout", R"({"imageLayoutVersion": "1.0.0"})");
        tar.add_file("repositories", repositories_json(*manifest, *ref));
        tar.finish();
        throw_if_interrupted(); // a build stopped by a signal writes no output
        out.commit();
    } catch (const Error& e) {
        throw Error("cannot export to docker-archive:" + file.string() + ": " + e.what());
    }
}

} // namespace factory::exporter
