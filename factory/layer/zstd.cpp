#include "factory/layer/zstd.hpp"

#include <algorithm>
#include <optional>
#include <vector>
#include <zstd.h>

namespace factory::layer {

namespace {

struct FreeCCtx {
    void operator()(ZSTD_CCtx* cctx) const noexcept { ZSTD_freeCCtx(cctx); }
};
using CCtx = std::unique_ptr<ZSTD_CCtx, FreeCCtx>;

class ZstdCompressor final : public Compressor {
  public:
    ZstdCompressor(Sink sink, CCtx cctx)
        : sink_(std::move(sink)), cctx_(std::move(cctx)), out_(ZSTD_CStreamOutSize()) {}

    Result<void> write(std::string_view bytes) override;
    Result<void> finish() override;

  private:
    Result<void> fail(std::string message);
    // One ZSTD_compressStream2 call; passes whatever it produced to the sink. Returns zstd's
    // "bytes left to flush" hint.
    Result<std::size_t> step(ZSTD_inBuffer& in, ZSTD_EndDirective mode);

    Sink sink_;
    CCtx cctx_;
    std::vector<char> out_;
    bool finished_ = false;
    std::optional<std::string> error_;
};

Result<void> ZstdCompressor::fail(std::string message) {
    error_ = std::move(message);
    return Unexpected(*error_);
}

Result<std::size_t> ZstdCompressor::step(ZSTD_inBuffer& in, ZSTD_EndDirective mode) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    std::size_t rc = ZSTD_compressStream2(cctx_.get(), &out, &in, mode);
    if (ZSTD_isError(rc)) return Unexpected(std::string("zstd: ") + ZSTD_getErrorName(rc));
    if (out.pos > 0)
        if (auto r = sink_(std::string_view(out_.data(), out.pos)); !r)
            return Unexpected(r.error());
    return rc;
}

Result<void> ZstdCompressor::write(std::string_view bytes) {
    if (error_) return Unexpected(*error_);
    if (finished_) return fail("zstd: write after finish");
    // An empty write is skipped: the first call of a stream must not be the ZSTD_e_end.
    ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
    while (in.pos < in.size)
        if (auto r = step(in, ZSTD_e_continue); !r) return fail(r.error());
    return {};
}

Result<void> ZstdCompressor::finish() {
    if (error_) return Unexpected(*error_);
    if (finished_) return fail("zstd: finish called twice");
    finished_ = true;
    ZSTD_inBuffer in{nullptr, 0, 0};
    for (;;) {
        auto left = step(in, ZSTD_e_end);
        if (!left) return fail(left.error());
        if (*left == 0) return {};
    }
}

Result<void> set(ZSTD_CCtx* cctx, ZSTD_cParameter param, int value, const char* what) {
    std::size_t rc = ZSTD_CCtx_setParameter(cctx, param, value);
    if (ZSTD_isError(rc))
        return Unexpected(std::string("zstd: cannot set ") + what + " to " + std::to_string(value) +
                          ": " + ZSTD_getErrorName(rc));
    return {};
}

} // namespace

Result<std::unique_ptr<Compressor>> make_zstd_compressor(Sink sink, ZstdOptions options) {
    if (options.level < 1 || options.level > 19)
        return Unexpected("zstd level must be 1..19, not " + std::to_string(options.level));
    CCtx cctx(ZSTD_createCCtx());
    if (!cctx) return Unexpected("zstd: cannot create a compression context");
    auto workers = static_cast<int>(std::max(options.workers, 1u));
    if (auto r = set(cctx.get(), ZSTD_c_nbWorkers, workers, "nbWorkers"); !r)
        return Unexpected(r.error() + " (libzstd built without multithreading? its output "
                                      "would depend on it)");
    if (auto r = set(cctx.get(), ZSTD_c_compressionLevel, options.level, "level"); !r)
        return Unexpected(r.error());
    if (auto r = set(cctx.get(), ZSTD_c_checksumFlag, options.checksum ? 1 : 0, "checksum"); !r)
        return Unexpected(r.error());
    // A fixed job size: the default (4 windows, 8 MiB at level 3) keeps several jobs' input and
    // output buffered; 2 MiB jobs keep a layer well under 64 MiB of memory. Fixed, so the bytes
    // still don't depend on the number of workers.
    if (auto r = set(cctx.get(), ZSTD_c_jobSize, 2 << 20, "jobSize"); !r)
        return Unexpected(r.error());
    return std::make_unique<ZstdCompressor>(std::move(sink), std::move(cctx));
}

} // namespace factory::layer
