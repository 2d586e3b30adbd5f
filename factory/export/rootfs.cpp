#include "factory/export/rootfs.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "factory/export/image_files.hpp"
#include "factory/layer/tar_writer.hpp"
#include "factory/oci/image_config.hpp"
#include "factory/oci/manifest.hpp"
#include "factory/runtime/applier.hpp"
#include "factory/runtime/changeset.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::exporter {

namespace fs = std::filesystem;

oci::ImageConfig flatten_image(const oci::Layout& store, const oci::Descriptor& image,
                               const fs::path& root) {
    auto manifest = value_or_throw(store.read_manifest(image));
    auto config = value_or_throw(store.read_config(manifest.config, manifest.layers.size()));
    auto diff_ids = config.diff_ids();
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) throw Error("cannot open " + root.string() + ": " + errno_string(errno));
    for (std::size_t i = 0; i < manifest.layers.size(); ++i) {
        const auto& layer = manifest.layers[i];
        auto hex = value_or_throw(layer.sha256_hex());
        runtime::ApplyOptions options;
        options.mode = runtime::ApplyMode::rootfs;
        options.compression = runtime::compression_of_media_type(layer.media_type);
        options.expected_digest = layer.digest;
        if (i < diff_ids.size()) options.expected_diff_id = diff_ids[i];
        auto stats = runtime::apply_layer(store.blobs().path(hex), root_fd.get(), options);
        if (!stats) throw Error("layer " + layer.digest + ": " + stats.error());
    }
    return config;
}

void export_rootfs_dir(const oci::Layout& store, const oci::Descriptor& image,
                       const fs::path& dir) {
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::is_empty(dir, ec))
        throw Error("cannot export to rootfs:" + dir.string() + ": the directory is not empty");
    auto parent = fs::absolute(dir).parent_path();
    fs::create_directories(parent, ec);
    TempDir temp(parent, std::string(temp_prefix) + "rootfs-");
    ::chmod(temp.path().c_str(), 0755);
    try {
        flatten_image(store, image, temp.path());
    } catch (const Error& e) {
        throw Error("cannot export to rootfs:" + dir.string() + ": " + e.what());
    }
    throw_if_interrupted(); // a build stopped by a signal writes no output
    fs::remove(dir, ec);    // an empty directory may stand there
    if (::rename(temp.path().c_str(), dir.c_str()) != 0)
        throw Error("failed to rename " + temp.path().string() + " to " + dir.string() + ": " +
                    errno_string(errno));
    temp.keep();
}

void export_rootfs_tar(const oci::Layout& store, const oci::Descriptor& image,
                       const fs::path& file) {
    auto parent = fs::absolute(file).parent_path();
    TempDir temp(parent, std::string(temp_prefix) + "rootfs-");
    try {
        auto config = flatten_image(store, image, temp.path());
        runtime::NormalizeOptions norm;
        norm.drop_noise = false;
        auto entries = value_or_throw(runtime::diff_upper(temp.path(), norm));
        AtomicFile out(file, 0644);
        int fd = out.fd();
        auto sink = [fd](std::string_view bytes) -> Result<void> {
            return write_all(fd, bytes.data(), bytes.size());
        };
        value_or_throw(layer::write_tar(std::move(entries), created_epoch(config), sink));
        throw_if_interrupted(); // a build stopped by a signal writes no output
        out.commit();
    } catch (const Error& e) {
        throw Error("cannot export to rootfs-tar:" + file.string() + ": " + e.what());
    }
}

} // namespace factory::exporter
