#pragma once
// A layer blob read as its uncompressed tar stream, with both digests computed on the way
// (image-spec config.md "Layer DiffID": the diff_id is the sha256 of the uncompressed tar; the
// descriptor's digest is the sha256 of the blob). The blob is decompressed here — zlib or
// libzstd, in-process — and not by libarchive, so that every byte the tar reader sees is hashed
// and counted: the caps on size and compression ratio hold whatever the reader skips.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "factory/layer/layer_writer.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

struct StreamLimits {
    std::uint64_t max_bytes = 256ull << 30; // uncompressed tar bytes
    std::uint64_t ratio_after = 1ull << 30; // check the ratio past this many bytes…
    std::uint64_t max_ratio = 1000;         // …and refuse above max_ratio : 1
};

class LayerStream {
  public:
    // Opens a blob (a regular file, O_NOFOLLOW). compression: nullopt sniffs the magic bytes
    // (gzip 1f 8b, zstd 28 b5 2f fd, else a plain tar).
    static Result<std::unique_ptr<LayerStream>> open(const std::filesystem::path& blob,
                                                     std::optional<layer::Compression> compression,
                                                     const StreamLimits& limits);
    virtual ~LayerStream();

    // The next chunk of the uncompressed stream: a view into an internal buffer valid until the
    // next call; empty at the end. An error names the blob and what went wrong (corrupt data,
    // trailing garbage, a cap exceeded).
    Result<std::string_view> next();
    // Reads (and hashes) the rest of the stream, e.g. the tar's zero padding after the
    // end-of-archive marker that the tar reader doesn't consume.
    Result<void> drain();

    // Valid once next() returned an empty view (or drain() succeeded): "sha256:<hex>".
    std::string diff_id();
    std::string digest();
    std::uint64_t compressed_bytes() const noexcept { return in_total_; }
    std::uint64_t uncompressed_bytes() const noexcept { return out_total_; }
    layer::Compression compression() const noexcept { return compression_; }
    const std::string& name() const noexcept { return name_; }

  protected:
    LayerStream(); // defined where Hashes is complete
    // Implementations: fill out with up to `cap` bytes; 0 at the end of the stream.
    virtual Result<std::size_t> produce(char* out, std::size_t cap) = 0;
    // Raw bytes from the blob (hashed for the digest); 0 at EOF.
    Result<std::size_t> read_raw(char* buf, std::size_t cap);

    std::string name_;
    layer::Compression compression_ = layer::Compression::none;

  private:
    struct Hashes;
    int fd_ = -1;
    StreamLimits limits_;
    std::uint64_t in_total_ = 0, out_total_ = 0;
    bool eof_ = false;
    std::string out_;
    std::unique_ptr<Hashes> hashes_;
    std::string diff_id_, digest_;
    void finish_hashes();
};

} // namespace factory::runtime
