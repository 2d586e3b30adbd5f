#include "factory/layer/layer_writer.hpp"

#include "factory/layer/gzip.hpp"
#include "factory/layer/tar_writer.hpp"
#include "factory/layer/zstd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"

namespace factory::layer {

namespace {

class Passthrough final : public Compressor {
  public:
    explicit Passthrough(Sink sink) : sink_(std::move(sink)) {}
    Result<void> write(std::string_view bytes) override { return sink_(bytes); }
    Result<void> finish() override { return {}; }

  private:
    Sink sink_;
};

Result<std::unique_ptr<Compressor>> make_compressor(const LayerOptions& options, Sink sink,
                                                    BlockReport* report) {
    switch (options.compression) {
    case Compression::none:
        return std::make_unique<Passthrough>(std::move(sink));
    case Compression::gzip:
        return make_gzip_compressor(std::move(sink),
                                    {.level = options.level == -1 ? 6 : options.level,
                                     .threads = options.threads,
                                     .reuse = options.reuse,
                                     .report = report});
    case Compression::zstd:
        return make_zstd_compressor(
            std::move(sink),
            {.level = options.level == -1 ? 3 : options.level, .workers = 1, .checksum = true});
    }
    return Unexpected("unknown compression");
}

// The blob's end of the pipe: hashed and counted as it is written.
class BlobOutput {
  public:
    explicit BlobOutput(int fd) : fd_(fd) {}
    Result<void> write(std::string_view bytes) {
        sha_.update(bytes);
        size_ += bytes.size();
        if (auto r = write_all(fd_, bytes.data(), bytes.size()); !r)
            return Unexpected("cannot write layer blob: " + r.error());
        return {};
    }
    std::string digest() { return "sha256:" + sha_.hex_digest(); }
    std::uint64_t size() const { return size_; }

  private:
    int fd_;
    Sha256 sha_;
    std::uint64_t size_ = 0;
};

} // namespace

std::string_view media_type(Compression compression) {
    switch (compression) {
    case Compression::none:
        return "application/vnd.oci.image.layer.v1.tar";
    case Compression::gzip:
        return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::zstd:
        return "application/vnd.oci.image.layer.v1.tar+zstd";
    }
    return "";
}

Result<Compression> parse_compression(std::string_view name) {
    if (name == "gzip") return Compression::gzip;
    if (name == "zstd") return Compression::zstd;
    if (name == "none" || name == "uncompressed") return Compression::none;
    return Unexpected("unknown compression \"" + std::string(name) +
                      "\" (expected gzip, zstd or none)");
}

bool cut_before(std::string_view path) {
    Sha256 sha;
    sha.update(std::string_view("factory-cut/1\0", 14));
    sha.update(path);
    auto hex = sha.hex_digest();
    return std::stoi(hex.substr(0, 2), nullptr, 16) % 32 == 0;
}

Result<LayerInfo> write_layer(std::vector<Entry> entries, const LayerOptions& options, int out_fd) {
    auto sorted = sort_entries(std::move(entries));
    if (!sorted) return Unexpected(sorted.error());
    BlobOutput blob(out_fd);
    BlockReport report;
    bool blocks = options.compression == Compression::gzip;
    auto compressor = make_compressor(
        options, [&blob](std::string_view bytes) { return blob.write(bytes); },
        blocks ? &report : nullptr);
    if (!compressor) return Unexpected(compressor.error());
    Sha256 tar_sha;
    TarWriter tar(
        [&](std::string_view bytes) {
            tar_sha.update(bytes);
            return (*compressor)->write(bytes);
        },
        options.epoch);
    for (const auto& entry : *sorted) {
        if (blocks && cut_before(entry.path)) {
            if (auto r = tar.flush(); !r) return Unexpected(r.error());
            if (auto r = (*compressor)->cut(); !r) return Unexpected(r.error());
        }
        if (auto r = tar.add(entry); !r) return Unexpected(r.error());
    }
    if (auto r = tar.finish(); !r) return Unexpected(r.error());
    if (auto r = (*compressor)->finish(); !r) return Unexpected(r.error());
    return LayerInfo{.diff_id = "sha256:" + tar_sha.hex_digest(),
                     .digest = blob.digest(),
                     .size = blob.size(),
                     .media_type = std::string(media_type(options.compression)),
                     .blocks = std::move(report.map),
                     .blocks_reused = report.reused,
                     .reused_input_bytes = report.reused_input_bytes};
}

} // namespace factory::layer
