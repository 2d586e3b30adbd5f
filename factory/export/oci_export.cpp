#include "factory/export/oci_export.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "factory/export/tar_writer.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::exporter {

std::vector<oci::Descriptor> image_blobs(const oci::Layout& store, const oci::Descriptor& image) {
    auto blobs = store.closure(image);
    if (!blobs) throw Error(blobs.error());
    for (const auto& d : *blobs) {
        auto hex = d.sha256_hex();
        if (!hex) throw Error(hex.error());
        auto size = store.blobs().size(*hex);
        if (!size)
            throw Error("blob " + d.digest + " of image " + image.digest +
                        " is missing from the store " + store.dir().string());
        if (*size != static_cast<std::uint64_t>(d.size))
            throw Error(store.blobs().path(*hex).string() + ": size is " + std::to_string(*size) +
                        " bytes, its descriptor says " + std::to_string(d.size));
    }
    return std::move(*blobs);
}

oci::Descriptor output_descriptor(const oci::Descriptor& image) {
    oci::Descriptor d;
    d.media_type = image.media_type;
    d.digest = image.digest;
    d.size = image.size;
    d.platform = image.platform;
    return d;
}

void export_oci_dir(const oci::Layout& store, const oci::Descriptor& image, const fs::path& dir,
                    const std::string& tag) {
    if (tag.empty())
        throw Error("cannot export to oci:" + dir.string() + ": no TAG to name the image");
    auto blobs = image_blobs(store, image);
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::exists(dir / "oci-layout", ec) && !fs::is_empty(dir, ec))
        throw Error("cannot export to oci:" + dir.string() +
                    ": the directory exists, is not empty and is not an OCI image layout");
    try {
        auto out = oci::Layout::create(dir);
        for (const auto& d : blobs) {
            auto hex = *d.sha256_hex();
            // A blob is verified when it is exported: a corrupt store blob never leaves the store.
            if (auto ok = store.blobs().verify(hex); !ok)
                throw Error(ok.error() + "; run `factory cache verify --repair` and build again");
            auto r = out.blobs().add_file(store.blobs().path(hex), hex,
                                          static_cast<std::uint64_t>(d.size));
            if (!r) throw Error(r.error());
        }
        throw_if_interrupted(); // a build stopped by a signal writes no output
        out.set_ref(tag, output_descriptor(image));
    } catch (const Error& e) {
        throw Error("cannot export to oci:" + dir.string() + ": " + e.what());
    }
}

namespace {

// Writes an OCI layout holding `blobs` into tar, entries sorted by name: blobs/, blobs/sha256/,
// blobs/sha256/<hex>…, then `extra` files (already sorted, names after "blobs/").
void write_layout_tar(TarWriter& tar, const oci::Layout& store,
                      std::vector<oci::Descriptor> blobs) {
    std::sort(blobs.begin(), blobs.end(), [](const oci::Descriptor& a, const oci::Descriptor& b) {
        return a.digest < b.digest;
    });
    tar.add_directory("blobs/");
    tar.add_directory("blobs/sha256/");
    for (const auto& d : blobs) {
        auto hex = *d.sha256_hex();
        auto fd = store.blobs().open(hex);
        if (!fd) throw Error(fd.error());
        tar.add_file_from_fd("blobs/sha256/" + hex, fd->get(), static_cast<std::uint64_t>(d.size),
                             hex);
    }
}

} // namespace

void export_oci_archive(const oci::Layout& store, const oci::Descriptor& image,
                        const fs::path& file, const std::string& tag) {
    auto blobs = image_blobs(store, image);
    oci::Index index;
    auto desc = output_descriptor(image);
    if (!tag.empty()) desc.annotations[oci::annotation::ref_name] = tag;
    index.manifests.push_back(desc);
    try {
        AtomicFile out(file, 0644);
        TarWriter tar(out.fd());
        write_layout_tar(tar, store, blobs);
        tar.add_file("index.json", serialize(index));
        tar.add_file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
        tar.finish();
        throw_if_interrupted(); // a build stopped by a signal writes no output
        out.commit();
    } catch (const Error& e) {
        throw Error("cannot export to oci-archive:" + file.string() + ": " + e.what());
    }
}

} // namespace factory::exporter
