#pragma once
// Media types of the image spec (media-types.md) and the Docker schema2 equivalents we accept
// when reading bases made by `docker save` or skopeo (distribution manifest-v2-2.md).

#include <string_view>

namespace factory::oci::media_type {

inline constexpr std::string_view index = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view manifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view config = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view layer_tar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view layer_gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view layer_zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view empty = "application/vnd.oci.empty.v1+json";
inline constexpr std::string_view layout_header = "application/vnd.oci.layout.header.v1+json";

inline constexpr std::string_view docker_manifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view docker_manifest_list =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view docker_config = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view docker_layer_gzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view docker_foreign_layer_gzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

inline bool is_manifest(std::string_view t) {
    return t == manifest || t == docker_manifest;
}
inline bool is_index(std::string_view t) {
    return t == index || t == docker_manifest_list;
}
inline bool is_config(std::string_view t) {
    return t == config || t == docker_config;
}
inline bool is_layer(std::string_view t) {
    return t == layer_tar || t == layer_gzip || t == layer_zstd || t == docker_layer_gzip ||
           t == docker_foreign_layer_gzip ||
           t == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
           t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
           t == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
}

// The OCI name of a layer type, so that an image built on a Docker base is all-OCI. The blob is
// the same bytes either way (a gzip'd tar), so its digest is unchanged. Other types unchanged.
inline std::string_view to_oci_layer(std::string_view t) {
    if (t == docker_layer_gzip) return layer_gzip;
    return t;
}

} // namespace factory::oci::media_type
