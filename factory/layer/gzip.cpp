#include "factory/layer/gzip.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>
#include <zlib.h>

namespace factory::layer {

namespace {

constexpr std::size_t dict_size = 32 << 10; // deflate's window
constexpr unsigned max_threads = 32;

// One block of the stream on its way through a worker.
struct Job {
    std::vector<unsigned char> dict;  // the previous block's last 32 KiB (empty for the first)
    std::vector<unsigned char> input; // gzip_block_size bytes, or fewer for the last block
    std::vector<unsigned char> output;
    bool last = false;
    uLong crc = 0;
    std::string error;
    bool done = false; // guarded by the compressor's mutex when workers run
};

// A raw deflate stream reused for many blocks: deflateReset gives the state of a fresh
// deflateInit2, so reuse doesn't change a byte.
class Deflater {
  public:
    explicit Deflater(int level)
        : init_(deflateInit2(&z_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY)) {}
    Deflater(const Deflater&) = delete;
    Deflater& operator=(const Deflater&) = delete;
    ~Deflater() {
        if (init_ == Z_OK) deflateEnd(&z_);
    }

    Result<void> compress(Job& job);

  private:
    z_stream z_{};
    int init_;
};

// True when a block's bytes are close to uniformly distributed (order-0 entropy above 7.95
// bits a byte): random data, or data compressed already. deflate can't shrink such a block
// (it would end up in stored blocks anyway) but spends as long on it as on text, so the block
// is stored without trying. The test is a function of the block's bytes alone, so the output
// still doesn't depend on the thread count.
bool looks_incompressible(const std::vector<unsigned char>& input) {
    constexpr std::size_t min_size = 16 << 10;
    if (input.size() < min_size) return false;
    std::array<std::uint32_t, 256> counts{};
    for (unsigned char c : input)
        ++counts[c];
    double n = static_cast<double>(input.size());
    double sum = 0;
    for (auto c : counts)
        if (c) sum += c * std::log2(static_cast<double>(c));
    double entropy = std::log2(n) - sum / n;
    return entropy > 7.95;
}

// RFC 1951 3.2.4: stored blocks of at most 65535 bytes, each a header byte (BFINAL, BTYPE=00,
// padding: the stream is byte-aligned after the previous block's sync flush), LEN and NLEN.
void store_blocks(Job& job) {
    const auto& in = job.input;
    job.output.clear();
    job.output.reserve(in.size() + (in.size() / 65535 + 1) * 5);
    std::size_t pos = 0;
    do {
        std::size_t len = std::min<std::size_t>(65535, in.size() - pos);
        bool final_block = job.last && pos + len == in.size();
        job.output.push_back(final_block ? 1 : 0);
        job.output.push_back(static_cast<unsigned char>(len & 0xff));
        job.output.push_back(static_cast<unsigned char>(len >> 8));
        job.output.push_back(static_cast<unsigned char>(~len & 0xff));
        job.output.push_back(static_cast<unsigned char>((~len >> 8) & 0xff));
        job.output.insert(job.output.end(), in.begin() + static_cast<std::ptrdiff_t>(pos),
                          in.begin() + static_cast<std::ptrdiff_t>(pos + len));
        pos += len;
    } while (pos < in.size());
}

Result<void> Deflater::compress(Job& job) {
    if (looks_incompressible(job.input)) {
        store_blocks(job);
        job.crc = crc32(0, job.input.data(), static_cast<uInt>(job.input.size()));
        return {};
    }
    if (init_ != Z_OK)
        return Unexpected("zlib: deflateInit2 failed (" + std::to_string(init_) + ")");
    deflateReset(&z_);
    if (!job.dict.empty() &&
        deflateSetDictionary(&z_, job.dict.data(), static_cast<uInt>(job.dict.size())) != Z_OK)
        return Unexpected("zlib: deflateSetDictionary failed");
    z_.next_in = job.input.data();
    z_.avail_in = static_cast<uInt>(job.input.size());
    // A sync flush adds an empty stored block (5 bytes) to deflateBound's estimate.
    job.output.resize(deflateBound(&z_, job.input.size()) + 16);
    std::size_t produced = 0;
    int flush = job.last ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
        z_.next_out = job.output.data() + produced;
        z_.avail_out = static_cast<uInt>(job.output.size() - produced);
        int rc = deflate(&z_, flush);
        produced = job.output.size() - z_.avail_out;
        if (rc == Z_STREAM_ERROR) return Unexpected("zlib: deflate failed");
        // zlib manual: a flush is complete when deflate leaves output space unused.
        if (job.last ? rc == Z_STREAM_END : z_.avail_out != 0) break;
        job.output.resize(job.output.size() * 2);
    }
    job.output.resize(produced);
    job.crc = crc32(0, job.input.data(), static_cast<uInt>(job.input.size()));
    return {};
}

class GzipCompressor final : public Compressor {
  public:
    GzipCompressor(Sink sink, int level, unsigned threads);
    ~GzipCompressor() override;

    Result<void> write(std::string_view bytes) override;
    Result<void> finish() override;

  private:
    Result<void> fail(std::string message);
    Result<void> submit(bool last);
    Result<void> emit_oldest();
    std::unique_ptr<Job> take_job();
    void worker_loop();

    Sink sink_;
    int level_;
    std::size_t max_in_flight_;
    std::optional<Deflater> inline_deflater_;    // single-threaded mode
    std::unique_ptr<Job> current_;               // the block being filled
    std::deque<std::unique_ptr<Job>> in_flight_; // submitted, in stream order
    std::vector<std::unique_ptr<Job>> spare_;    // finished jobs, reused for their buffers
    uLong crc_ = crc32(0, nullptr, 0);
    std::uint32_t isize_ = 0; // RFC 1952: input size modulo 2^32
    bool started_ = false, finished_ = false;
    std::optional<std::string> error_;

    std::mutex mutex_;
    std::condition_variable work_ready_, job_done_;
    std::deque<Job*> queue_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

GzipCompressor::GzipCompressor(Sink sink, int level, unsigned threads)
    : sink_(std::move(sink)), level_(level), max_in_flight_(threads == 1 ? 1 : 2 * threads) {
    current_ = take_job();
    if (threads == 1) {
        inline_deflater_.emplace(level);
        return;
    }
    for (unsigned i = 0; i < threads; ++i)
        workers_.emplace_back([this] { worker_loop(); });
}

GzipCompressor::~GzipCompressor() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    work_ready_.notify_all();
    for (auto& worker : workers_)
        worker.join();
}

void GzipCompressor::worker_loop() {
    Deflater deflater(level_);
    for (;;) {
        Job* job = nullptr;
        {
            std::unique_lock lock(mutex_);
            work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            job = queue_.front();
            queue_.pop_front();
        }
        auto r = deflater.compress(*job);
        {
            std::lock_guard lock(mutex_);
            if (!r) job->error = r.error();
            job->done = true;
        }
        job_done_.notify_all();
    }
}

std::unique_ptr<Job> GzipCompressor::take_job() {
    if (spare_.empty()) {
        auto job = std::make_unique<Job>();
        job->input.reserve(gzip_block_size);
        return job;
    }
    auto job = std::move(spare_.back());
    spare_.pop_back();
    job->dict.clear();
    job->input.clear();
    job->last = job->done = false;
    job->error.clear();
    return job;
}

Result<void> GzipCompressor::fail(std::string message) {
    error_ = std::move(message);
    return Unexpected(*error_);
}

// Hands the current block to the workers (or compresses it here), starts the next one with
// this block's tail as dictionary, and writes finished blocks once too many are in flight.
Result<void> GzipCompressor::submit(bool last) {
    current_->last = last;
    std::unique_ptr<Job> next;
    if (!last) {
        next = take_job();
        auto tail = std::min(dict_size, current_->input.size());
        next->dict.assign(current_->input.end() - static_cast<std::ptrdiff_t>(tail),
                          current_->input.end());
    }
    Job* job = current_.get();
    in_flight_.push_back(std::move(current_));
    current_ = std::move(next);
    if (inline_deflater_) {
        if (auto r = inline_deflater_->compress(*job); !r) job->error = r.error();
        job->done = true;
    } else {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(job);
        }
        work_ready_.notify_one();
    }
    while (in_flight_.size() >= max_in_flight_ || (last && !in_flight_.empty()))
        if (auto r = emit_oldest(); !r) return r;
    return {};
}

Result<void> GzipCompressor::emit_oldest() {
    Job& job = *in_flight_.front();
    if (!inline_deflater_) {
        std::unique_lock lock(mutex_);
        job_done_.wait(lock, [&job] { return job.done; });
    }
    if (!job.error.empty()) return fail(job.error);
    auto out =
        std::string_view(reinterpret_cast<const char*>(job.output.data()), job.output.size());
    if (auto r = sink_(out); !r) return fail(r.error());
    crc_ = crc32_combine(crc_, job.crc, static_cast<z_off_t>(job.input.size()));
    isize_ += static_cast<std::uint32_t>(job.input.size());
    spare_.push_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
    return {};
}

Result<void> GzipCompressor::write(std::string_view bytes) {
    if (error_) return Unexpected(*error_);
    if (finished_) return fail("gzip: write after finish");
    if (!started_) {
        // RFC 1952: ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown).
        static constexpr char header[10] = {'\x1f', '\x8b', 8, 0, 0, 0, 0, 0, 0, '\xff'};
        if (auto r = sink_(std::string_view(header, sizeof header)); !r) return fail(r.error());
        started_ = true;
    }
    while (!bytes.empty()) {
        // A full block is only submitted once more input arrives: the last block is the one
        // finish() sees, and it must end the deflate stream.
        if (current_->input.size() == gzip_block_size)
            if (auto r = submit(false); !r) return r;
        auto n = std::min(bytes.size(), gzip_block_size - current_->input.size());
        current_->input.insert(current_->input.end(), bytes.begin(), bytes.begin() + n);
        bytes.remove_prefix(n);
    }
    return {};
}

Result<void> GzipCompressor::finish() {
    if (finished_ && !error_) return fail("gzip: finish called twice");
    if (auto r = write({}); !r) return r; // writes the header of an empty stream
    finished_ = true;
    if (auto r = submit(true); !r) return r;
    unsigned char trailer[8];
    for (int i = 0; i < 4; ++i) {
        trailer[i] = static_cast<unsigned char>(crc_ >> (8 * i));
        trailer[4 + i] = static_cast<unsigned char>(isize_ >> (8 * i));
    }
    if (auto r = sink_(std::string_view(reinterpret_cast<char*>(trailer), 8)); !r)
        return fail(r.error());
    return {};
}

unsigned effective_threads(unsigned requested) {
    unsigned n = requested != 0 ? requested : std::thread::hardware_concurrency();
    return std::clamp(n, 1u, max_threads);
}

} // namespace

Result<std::unique_ptr<Compressor>> make_gzip_compressor(Sink sink, GzipOptions options) {
    if (options.level < 1 || options.level > 9)
        return Unexpected("gzip level must be 1..9, not " + std::to_string(options.level));
    return std::make_unique<GzipCompressor>(std::move(sink), options.level,
                                            effective_threads(options.threads));
}

} // namespace factory::layer
