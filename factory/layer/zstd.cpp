#include "factory/layer/zstd.hpp"

#include <cstring>
#include <vector>
#include <zstd.h>

namespace factory::layer {

namespace {

// One thread's zstd contexts. ZSTD_compress2 is a one-shot compression of the whole block
// with the context's sticky parameters, so reusing the context changes no byte. Without
// ZSTD_c_nbWorkers (0: single-threaded) the frame doesn't depend on any job size.
class ZstdCodec final : public BlockCodec {
  public:
    explicit ZstdCodec(int level) : level_(level), c_(ZSTD_createCCtx()), d_(ZSTD_createDCtx()) {}

    Result<std::size_t> compress(const std::vector<unsigned char>& input,
                                 std::vector<unsigned char>& output) override {
        if (!c_) return Unexpected("zstd: cannot create a compression context");
        if (!configured_) {
            for (auto r : {set(ZSTD_c_compressionLevel, level_, "level"),
                           set(ZSTD_c_checksumFlag, 1, "checksum"),
                           set(ZSTD_c_contentSizeFlag, 1, "content size")})
                if (!r) return Unexpected(r.error());
            configured_ = true;
        }
        std::size_t bound = ZSTD_compressBound(input.size());
        if (output.size() < bound) output.resize(bound);
        std::size_t n =
            ZSTD_compress2(c_.get(), output.data(), output.size(), input.data(), input.size());
        if (ZSTD_isError(n)) return Unexpected(std::string("zstd: ") + ZSTD_getErrorName(n));
        return n;
    }

    // One whole frame, of the input's size, that decompresses (checksum checked) to the input.
    // libzstd doesn't export XXH64, so the check is a decompression: ~1 ms a block, against
    // ~5 ms to compress it again.
    bool holds(const std::vector<unsigned char>& piece,
               const std::vector<unsigned char>& input) override {
        if (!d_ || ZSTD_getFrameContentSize(piece.data(), piece.size()) != input.size() ||
            ZSTD_findFrameCompressedSize(piece.data(), piece.size()) != piece.size())
            return false;
        scratch_.resize(input.size());
        std::size_t n = ZSTD_decompressDCtx(d_.get(), scratch_.data(), scratch_.size(),
                                            piece.data(), piece.size());
        return !ZSTD_isError(n) && n == input.size() &&
               std::memcmp(scratch_.data(), input.data(), n) == 0;
    }

  private:
    Result<void> set(ZSTD_cParameter param, int value, const char* what) {
        std::size_t rc = ZSTD_CCtx_setParameter(c_.get(), param, value);
        if (ZSTD_isError(rc))
            return Unexpected(std::string("zstd: cannot set ") + what + " to " +
                              std::to_string(value) + ": " + ZSTD_getErrorName(rc));
        return {};
    }

    struct FreeC {
        void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
    };
    struct FreeD {
        void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
    };
    int level_;
    bool configured_ = false;
    std::unique_ptr<ZSTD_CCtx, FreeC> c_;
    std::unique_ptr<ZSTD_DCtx, FreeD> d_;
    std::vector<unsigned char> scratch_;
};

} // namespace

Result<std::unique_ptr<Compressor>> make_zstd_compressor(Sink sink, BlockOptions options) {
    int level = options.level == -1 ? 3 : options.level;
    if (level < 1 || level > 19)
        return Unexpected("zstd level must be 1..19, not " + std::to_string(level));
    return make_block_compressor(
        std::move(sink), [level] { return std::make_unique<ZstdCodec>(level); },
        zstd_block_format(level), std::move(options));
}

std::string zstd_block_format(int level) {
    // The cut rule's version is part of it, as for gzip (gzip_block_format). The library's
    // version is the one that runs: it decides the bytes.
    return std::string("zstd-frames/1 cut/1 libzstd-") + ZSTD_versionString() + " level-" +
           std::to_string(level);
}

} // namespace factory::layer
