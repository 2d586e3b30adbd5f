#include "factory/runtime/layer_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "factory/util/sha256.hpp"

namespace factory::runtime {

namespace {

constexpr std::size_t in_chunk = 256 << 10;
constexpr std::size_t out_chunk = 256 << 10;

// A plain tar: the blob is the stream (digest == diff_id).
class PlainStream final : public LayerStream {
  protected:
    Result<std::size_t> produce(char* out, std::size_t cap) override { return read_raw(out, cap); }
};

// gzip, possibly several members back to back (RFC 1952 §2.2; pigz -i, concatenated blobs).
// Anything after a member that is not another member is an error, as in Go's compress/gzip.
//
// A member that fits the window (factory's own gzip layers are members of at most 1 MiB of tar:
// layer/gzip.hpp) is inflated whole by libdeflate, ~2.8× zlib's speed here (docs/performance.md
// "Reading gzip layers"). From the first member that doesn't — a layer written as one member, as
// most tools write them — or that libdeflate refuses, zlib streams the rest: its words are the
// errors a damaged member gets, whichever way it was met.
class GzipStream final : public LayerStream {
  public:
    GzipStream() : d_(libdeflate_alloc_decompressor()) {
        std::memset(&z_, 0, sizeof z_);
        ok_ = inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK;
        if (!d_) streaming_ = true;
    }
    ~GzipStream() override {
        if (ok_) inflateEnd(&z_);
        if (d_) libdeflate_free_decompressor(d_);
    }

  protected:
    Result<std::size_t> produce(char* out, std::size_t cap) override {
        if (!ok_) return Unexpected("zlib: cannot initialise inflate");
        while (!streaming_ && member_at_ == member_.size()) {
            if (auto r = next_member(); !r) return Unexpected(r.error());
            if (done_) return 0;
        }
        if (!streaming_) {
            std::size_t n = std::min(cap, member_.size() - member_at_);
            std::memcpy(out, member_.data() + member_at_, n);
            member_at_ += n;
            return n;
        }
        return stream(out, cap);
    }

  private:
    static constexpr std::size_t window = 4 << 20;     // compressed bytes looked at at once
    static constexpr std::size_t member_cap = 2 << 20; // the largest member inflated whole

    // Inflates the next member whole into member_, or hands the stream to zlib (streaming_) at
    // that member; done_ at the end of the blob.
    Result<void> next_member() {
        if (auto r = fill_window(); !r) return r;
        if (z_.avail_in == 0 && eof_in_ && members_ > 0) {
            done_ = true;
            return {};
        }
        member_.resize(member_cap);
        std::size_t used = 0, made = 0;
        auto r = libdeflate_gzip_decompress_ex(d_, z_.next_in, z_.avail_in, member_.data(),
                                               member_.size(), &used, &made);
        if (r != LIBDEFLATE_SUCCESS) { // too big, or damaged: zlib takes it from its start
            streaming_ = true;
            member_.clear();
            member_at_ = 0;
            return {};
        }
        member_.resize(made);
        member_at_ = 0;
        z_.next_in += used;
        z_.avail_in -= static_cast<uInt>(used);
        ++members_;
        return {};
    }

    // Keeps at least half a window of unconsumed bytes (a whole member: at most member_cap of
    // output), or the rest of the blob; refilled to the whole window only when below that, so
    // the unconsumed bytes are moved to the front once per half window, not once per member.
    Result<void> fill_window() {
        if (z_.avail_in >= window / 2) return {};
        while (z_.avail_in < window && !eof_in_)
            if (auto r = fill(); !r) return r;
        return {};
    }

    Result<std::size_t> stream(char* out, std::size_t cap) {
        z_.next_out = reinterpret_cast<Bytef*>(out);
        z_.avail_out = static_cast<uInt>(cap);
        while (z_.avail_out == cap && !done_) {
            if (z_.avail_in == 0 && !eof_in_)
                if (auto r = fill(); !r) return Unexpected(r.error());
            if (!member_started_) {
                // Between members: the end, or another gzip header.
                if (z_.avail_in == 0 && eof_in_) {
                    done_ = true;
                    break;
                }
                if (z_.avail_in < 2 && !eof_in_) {
                    if (auto r = fill(); !r) return Unexpected(r.error());
                    continue;
                }
                if (z_.avail_in < 2 || z_.next_in[0] != 0x1f || z_.next_in[1] != 0x8b)
                    return Unexpected(members_ ? "trailing garbage after the gzip stream"
                                               : "not a gzip stream");
                if (inflateReset(&z_) != Z_OK) return Unexpected("zlib: inflateReset failed");
                member_started_ = true;
            }
            int r = inflate(&z_, Z_NO_FLUSH);
            if (r == Z_STREAM_END) {
                member_started_ = false;
                ++members_;
            } else if (r == Z_BUF_ERROR) {
                // No progress: more input needed (the loop reads it), unless there is none.
                if (eof_in_ && z_.avail_in == 0) return Unexpected("truncated gzip stream");
            } else if (r != Z_OK) {
                return Unexpected(std::string("corrupt gzip data: ") + (z_.msg ? z_.msg : "?"));
            }
        }
        return cap - z_.avail_out;
    }

    // Reads more input after the unconsumed bytes (moved to the front); sets eof_in_ at the end
    // of the blob.
    Result<void> fill() {
        std::size_t keep = z_.avail_in;
        if (keep && z_.next_in != reinterpret_cast<Bytef*>(in_.data()))
            std::memmove(in_.data(), z_.next_in, keep);
        auto n = read_raw(in_.data() + keep, in_.size() - keep);
        if (!n) return Unexpected(n.error());
        if (*n == 0) eof_in_ = true;
        z_.next_in = reinterpret_cast<Bytef*>(in_.data());
        z_.avail_in = static_cast<uInt>(keep + *n);
        return {};
    }

    z_stream z_;
    libdeflate_decompressor* d_;
    bool ok_ = false;
    bool streaming_ = false; // zlib has the stream from here on
    bool member_started_ = false;
    bool eof_in_ = false;
    bool done_ = false;
    unsigned members_ = 0;
    std::string in_ = std::string(window + in_chunk, '\0');
    std::string member_; // the member inflated whole, served from member_at_
    std::size_t member_at_ = 0;
};

// zstd: any number of frames (skippable frames included); the last one must be complete.
class ZstdStream final : public LayerStream {
  public:
    ZstdStream() : d_(ZSTD_createDStream()) {}
    ~ZstdStream() override { ZSTD_freeDStream(d_); }

  protected:
    Result<std::size_t> produce(char* out, std::size_t cap) override {
        if (!d_) return Unexpected("zstd: cannot create a decompression context");
        ZSTD_outBuffer ob{out, cap, 0};
        while (ob.pos == 0 && !done_) {
            // A full output buffer may leave decoded bytes inside the context: flush them
            // before reading more (or deciding the stream ended).
            if (ib_.pos == ib_.size && !pending_) {
                auto n = read_raw(in_.data(), in_.size());
                if (!n) return Unexpected(n.error());
                if (*n == 0) {
                    if (last_ != 0) return Unexpected("truncated zstd stream");
                    done_ = true;
                    break;
                }
                ib_ = {in_.data(), *n, 0};
            }
            last_ = ZSTD_decompressStream(d_, &ob, &ib_);
            if (ZSTD_isError(last_))
                return Unexpected(std::string("corrupt zstd data: ") + ZSTD_getErrorName(last_));
            pending_ = ob.pos == ob.size;
        }
        return ob.pos;
    }

  private:
    ZSTD_DStream* d_;
    std::string in_ = std::string(ZSTD_DStreamInSize(), '\0');
    ZSTD_inBuffer ib_{nullptr, 0, 0};
    std::size_t last_ = 0;
    bool pending_ = false;
    bool done_ = false;
};

layer::Compression sniff(int fd) {
    unsigned char magic[4] = {};
    ssize_t n = ::pread(fd, magic, sizeof magic, 0);
    if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) return layer::Compression::gzip;
    if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
        return layer::Compression::zstd;
    return layer::Compression::none;
}

} // namespace

struct LayerStream::Hashes {
    Sha256 raw, tar;
};

LayerStream::LayerStream() = default;

LayerStream::~LayerStream() {
    if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<LayerStream>>
LayerStream::open(const std::filesystem::path& blob, std::optional<layer::Compression> compression,
                  const StreamLimits& limits) {
    int fd = ::open(blob.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return Unexpected("cannot open layer " + blob.string() + ": " + errno_string(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return Unexpected("layer " + blob.string() + " is not a regular file");
    }
    auto c = compression ? *compression : sniff(fd);
    std::unique_ptr<LayerStream> s;
    switch (c) {
    case layer::Compression::none:
        s = std::make_unique<PlainStream>();
        break;
    case layer::Compression::gzip:
        s = std::make_unique<GzipStream>();
        break;
    case layer::Compression::zstd:
        s = std::make_unique<ZstdStream>();
        break;
    }
    s->fd_ = fd;
    s->name_ = blob.string();
    s->compression_ = c;
    s->limits_ = limits;
    s->hashes_ = std::make_unique<Hashes>();
    s->out_.resize(out_chunk);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return s;
}

Result<std::size_t> LayerStream::read_raw(char* buf, std::size_t cap) {
    for (;;) {
        ssize_t n = ::read(fd_, buf, cap);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected("read: " + errno_string(errno));
        in_total_ += static_cast<std::uint64_t>(n);
        if (compression_ != layer::Compression::none) hashes_->raw.update(buf, n);
        return static_cast<std::size_t>(n);
    }
}

Result<std::string_view> LayerStream::next() {
    if (eof_) return std::string_view();
    auto n = produce(out_.data(), out_.size());
    if (!n) return Unexpected("layer " + name_ + ": " + n.error());
    if (*n == 0) {
        eof_ = true;
        finish_hashes();
        return std::string_view();
    }
    out_total_ += *n;
    if (out_total_ > limits_.max_bytes)
        return Unexpected("layer " + name_ + ": uncompressed size exceeds the cap of " +
                          std::to_string(limits_.max_bytes) + " bytes");
    if (out_total_ > limits_.ratio_after && in_total_ > 0 &&
        out_total_ / in_total_ > limits_.max_ratio)
        return Unexpected("layer " + name_ + ": compression ratio over " +
                          std::to_string(limits_.max_ratio) + ":1 after " +
                          std::to_string(out_total_) + " bytes (a decompression bomb?)");
    hashes_->tar.update(out_.data(), *n);
    return std::string_view(out_.data(), *n);
}

Result<void> LayerStream::drain() {
    for (;;) {
        auto chunk = next();
        if (!chunk) return Unexpected(chunk.error());
        if (chunk->empty()) return {};
    }
}

void LayerStream::finish_hashes() {
    diff_id_ = "sha256:" + hashes_->tar.hex_digest();
    digest_ =
        compression_ == layer::Compression::none ? diff_id_ : "sha256:" + hashes_->raw.hex_digest();
}

std::string LayerStream::diff_id() {
    return diff_id_;
}
std::string LayerStream::digest() {
    return digest_;
}

} // namespace factory::runtime
