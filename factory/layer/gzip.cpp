#include "factory/layer/gzip.hpp"

#include "factory/layer/block_source.hpp"
#include "factory/util/sha256.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <libdeflate.h>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace factory::layer {

namespace {

constexpr unsigned max_threads = 32;

// One block of the stream (one gzip member) on its way through a worker.
struct Job {
    std::vector<unsigned char> input; // gzip_block_size bytes, or fewer for the last block
    // The member is output[0, output_size): the buffer keeps its size between blocks, so
    // compressing into it doesn't zero it first every time.
    std::vector<unsigned char> output;
    std::size_t output_size = 0;
    std::string error;
    std::string key;        // 64 hex, when the stream keeps a BlockReport or reuses
    bool key_known = false; // key set from the plan; else the sha256 of input, made by process()
    std::uint64_t input_end = 0; // uncompressed bytes of the stream up to this block's end
    std::string input_state;     // the input's SHA-256 midstate there, when it is hashed
    std::string blob_state;      // the output's midstate after this member, with input_state
    std::size_t sequence = 0;    // the block's place among those submitted to the workers
    bool reused = false;         // output copied from a BlockSource
    bool done = false;           // guarded by the compressor's mutex when workers run
};

constexpr double stored_entropy = 7.95; // bits a byte, above which a block is stored

using Histogram = std::array<std::array<std::uint32_t, 256>, 4>;

// Counts the bytes [from, to) of p into four histograms, to be summed: the same counts,
// without each increment waiting on the last.
void count_bytes(Histogram& part, const unsigned char* p, std::size_t from, std::size_t to) {
    std::size_t i = from;
    for (; i + 4 <= to; i += 4) {
        ++part[0][p[i]];
        ++part[1][p[i + 1]];
        ++part[2][p[i + 2]];
        ++part[3][p[i + 3]];
    }
    for (; i < to; ++i)
        ++part[0][p[i]];
}

std::array<double, 256> summed(const Histogram& part) {
    std::array<double, 256> c{};
    for (std::size_t b = 0; b < 256; ++b)
        c[b] = part[0][b] + part[1][b] + part[2][b] + part[3][b];
    return c;
}

// Order-0 entropy, in bits a byte, of n bytes with these counts (they may be fractional).
double entropy(const std::array<double, 256>& counts, double n) {
    double sum = 0;
    for (double c : counts)
        if (c > 0) sum += c * std::log2(c);
    return std::log2(n) - sum / n;
}

// The highest entropy an n-byte block can have when its first bytes have these counts: the
// block's counts c are at least the prefix's a, and sum to n. Entropy is concave and
// symmetric, so the most even such c is the maximum: the smallest counts raised to one level
// t, the others kept, c_b = max(a_b, t) with t set by the sum (real-valued c, so a bound for
// whole counts too).
double entropy_ceiling(std::array<double, 256> a, double n) {
    std::sort(a.begin(), a.end());
    double kept = 0; // the counts not raised: a[k..255]
    for (double c : a)
        kept += c;
    for (std::size_t k = 1; k <= 256; ++k) {
        kept -= a[k - 1];
        double t = (n - kept) / static_cast<double>(k);
        if (k < 256 && t > a[k]) continue; // a[k] is below the level too
        for (std::size_t j = 0; j < k; ++j)
            a[j] = t;
        return entropy(a, n);
    }
    return 8;
}

// True when a block's bytes are close to uniformly distributed (order-0 entropy above 7.95
// bits a byte): random data, or data compressed already. deflate can't shrink such a block
// (it would end up in stored blocks anyway) but spends as long on it as on text, so the block
// is stored without trying. The test is a function of the block's bytes alone, so the output
// still doesn't depend on the thread count.
//
// Text is known to be below the line long before its last byte: after an eighth, a quarter
// and half of the block the counts so far give a ceiling on the whole block's entropy
// (entropy_ceiling), and one under 7.9 settles it. The answer is the full count's, only
// sooner (the 0.05 margin is far above rounding); on C sources most blocks settle at a
// quarter, random data is counted to the end.
bool looks_incompressible(const std::vector<unsigned char>& input) {
    constexpr std::size_t min_size = 16 << 10;
    constexpr double settled = stored_entropy - 0.05;
    const std::size_t size = input.size();
    if (size < min_size) return false;
    const double n = static_cast<double>(size);
    Histogram part{};
    std::size_t done = 0;
    for (std::size_t checkpoint : {size / 8, size / 4, size / 2}) {
        count_bytes(part, input.data(), done, checkpoint);
        done = checkpoint;
        if (entropy_ceiling(summed(part), n) < settled) return false;
    }
    count_bytes(part, input.data(), done, size);
    return entropy(summed(part), n) > stored_entropy;
}

void put_le32(std::vector<unsigned char>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

// One member of stored blocks. RFC 1952: ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255, the
// deflate data, CRC-32 and size; RFC 1951 3.2.4: stored blocks of at most 65535 bytes, each a
// header byte (BFINAL on the last, BTYPE=00), LEN and NLEN.
void store_member(const std::vector<unsigned char>& in, std::vector<unsigned char>& out) {
    static constexpr unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    out.assign(header, header + sizeof header);
    out.reserve(in.size() + (in.size() / 65535 + 1) * 5 + 18);
    std::size_t pos = 0;
    do {
        std::size_t len = std::min<std::size_t>(65535, in.size() - pos);
        out.push_back(pos + len == in.size() ? 1 : 0);
        out.push_back(static_cast<unsigned char>(len & 0xff));
        out.push_back(static_cast<unsigned char>(len >> 8));
        out.push_back(static_cast<unsigned char>(~len & 0xff));
        out.push_back(static_cast<unsigned char>((~len >> 8) & 0xff));
        out.insert(out.end(), in.begin() + static_cast<std::ptrdiff_t>(pos),
                   in.begin() + static_cast<std::ptrdiff_t>(pos + len));
        pos += len;
    } while (pos < in.size());
    put_le32(out, libdeflate_crc32(0, in.data(), in.size()));
    put_le32(out, static_cast<std::uint32_t>(in.size()));
}

std::uint32_t get_le32(const unsigned char* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
           std::uint32_t{p[3]} << 24;
}

// A stored block is used only if it is a gzip member of this very input: RFC 1952 2.3.1, the
// trailer's CRC-32 and ISIZE. With the key (sha256 of the input) matching already, this
// guards against a map or blob that lies, at the cost of a CRC-32 (several GB/s).
bool member_of(const std::vector<unsigned char>& member, const std::vector<unsigned char>& input) {
    if (member.size() < 18 || member[0] != 0x1f || member[1] != 0x8b || member[2] != 8)
        return false;
    const unsigned char* trailer = member.data() + member.size() - 8;
    return get_le32(trailer) == libdeflate_crc32(0, input.data(), input.size()) &&
           get_le32(trailer + 4) == static_cast<std::uint32_t>(input.size());
}

// The gzip codec: a libdeflate compressor, one per thread (libdeflate's are not shared
// between threads). Reusing it for many blocks doesn't change a byte: each call is a
// whole-buffer compression.
class GzipCodec final : public BlockCodec {
  public:
    explicit GzipCodec(int level) : c_(libdeflate_alloc_compressor(level)) {}

    Result<std::size_t> compress(const std::vector<unsigned char>& input,
                                 std::vector<unsigned char>& output) override {
        if (looks_incompressible(input)) {
            store_member(input, output);
            return output.size();
        }
        if (!c_) return Unexpected("libdeflate: cannot allocate a compressor");
        std::size_t bound = libdeflate_gzip_compress_bound(c_.get(), input.size());
        if (output.size() < bound) output.resize(bound);
        std::size_t n = libdeflate_gzip_compress(c_.get(), input.data(), input.size(),
                                                 output.data(), output.size());
        if (n == 0) return Unexpected("libdeflate: gzip_compress ran out of space");
        return n;
    }
    bool holds(const std::vector<unsigned char>& piece,
               const std::vector<unsigned char>& input) override {
        return member_of(piece, input);
    }

  private:
    struct Free {
        void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
    };
    std::unique_ptr<libdeflate_compressor, Free> c_;
};

// One thread's side of the work on a block: copied from the BlockSource when it has one of
// the same input, else compressed by the thread's codec.
class Deflater {
  public:
    Deflater(std::unique_ptr<BlockCodec> codec, const BlockSource* reuse, bool keyed)
        : codec_(std::move(codec)), reuse_(reuse), keyed_(keyed || reuse) {}

    Result<void> process(Job& job) {
        job.reused = false;
        if (!keyed_) return compress(job);
        if (!job.key_known)
            job.key = Sha256::hex(std::string_view(reinterpret_cast<const char*>(job.input.data()),
                                                   job.input.size()));
        if (reuse_)
            if (auto found = reuse_->find(job.key))
                if (reuse_->read(*found, job.output) && codec_->holds(job.output, job.input)) {
                    job.output_size = job.output.size();
                    job.reused = true;
                    return {};
                }
        return compress(job);
    }

  private:
    Result<void> compress(Job& job) {
        auto n = codec_->compress(job.input, job.output);
        if (!n) return Unexpected(n.error());
        job.output_size = *n;
        return {};
    }

    std::unique_ptr<BlockCodec> codec_;
    const BlockSource* reuse_;
    bool keyed_;
};

class GzipCompressor final : public Compressor {
  public:
    // The block compressor of any codec (make_block_compressor), gzip's first.
    GzipCompressor(Sink sink, const BlockOptions& options, unsigned threads,
                   std::function<std::unique_ptr<BlockCodec>()> make_codec, std::string format);
    ~GzipCompressor() override;

    Result<void> write(std::string_view bytes) override;
    Result<void> cut() override;
    Result<void> finish() override;

  private:
    Result<void> fail(std::string message);
    void place(Job& job);
    void hash(Job& job);
    Result<void> submit();
    Result<void> emit_oldest();
    std::unique_ptr<Job> take_job();
    void worker_loop();

    Sink sink_;
    std::function<std::unique_ptr<BlockCodec>()> make_codec_;
    std::string format_;
    const BlockSource* reuse_;
    BlockReport* report_;
    const std::vector<PlannedBlock>* plan_;
    ResumableSha256* input_sha_;
    ResumableSha256* output_sha_;
    std::size_t block_index_ = 0; // of the next block submitted, in the whole stream
    std::uint64_t input_end_ = 0; // uncompressed bytes submitted, in the whole stream
    std::uint64_t offset_ = 0;    // compressed bytes emitted, in the whole stream
    std::size_t max_in_flight_;
    std::optional<Deflater> inline_deflater_;    // single-threaded mode
    std::unique_ptr<Job> current_;               // the block being filled
    std::deque<std::unique_ptr<Job>> in_flight_; // submitted, in stream order
    std::vector<std::unique_ptr<Job>> spare_;    // finished jobs, reused for their buffers
    bool submitted_any_ = false, finished_ = false;
    std::optional<std::string> error_;

    std::mutex mutex_;
    std::condition_variable work_ready_, job_done_;
    std::deque<Job*> queue_;
    std::size_t submitted_ = 0; // jobs handed to the workers
    std::size_t hashed_ = 0;    // of those, how many are hashed: the next to hash is this one
    std::condition_variable hash_turn_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

GzipCompressor::GzipCompressor(Sink sink, const BlockOptions& options, unsigned threads,
                               std::function<std::unique_ptr<BlockCodec>()> make_codec,
                               std::string format)
    : sink_(std::move(sink)), make_codec_(std::move(make_codec)), format_(std::move(format)),
      reuse_(options.reuse), report_(options.report), plan_(options.plan),
      input_sha_(options.input_sha), output_sha_(options.output_sha),
      max_in_flight_(threads == 1 ? 1 : 2 * threads) {
    current_ = take_job();
    block_index_ = options.prefix.size();
    if (!options.prefix.empty()) {
        input_end_ = options.prefix.back().input_end;
        offset_ = options.prefix.back().offset + options.prefix.back().size;
    }
    if (report_) {
        *report_ = BlockReport{.map = {.format = format_, .blocks = {}}};
        report_->map.blocks = options.prefix;
        report_->reused = options.prefix.size();
        report_->reused_input_bytes = input_end_;
    }
    if (threads == 1) {
        inline_deflater_.emplace(make_codec_(), reuse_, report_ != nullptr);
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
    hash_turn_.notify_all();
    for (auto& worker : workers_)
        worker.join();
}

// A worker compresses (or reuses) its block, then waits its turn to hash it: both hashes run
// over the stream in order, so the blocks take turns, oldest first, and the hashing leaves the
// thread that tars the entries and the others' compression running beside it.
void GzipCompressor::worker_loop() {
    Deflater deflater(make_codec_(), reuse_, report_ != nullptr);
    for (;;) {
        Job* job = nullptr;
        {
            std::unique_lock lock(mutex_);
            work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            job = queue_.front();
            queue_.pop_front();
        }
        auto r = deflater.process(*job);
        bool turn = false; // false only when stopping: then nothing is hashed
        {
            std::unique_lock lock(mutex_);
            hash_turn_.wait(lock, [&] { return stopping_ || hashed_ == job->sequence; });
            turn = hashed_ == job->sequence;
        }
        // Alone here: the turn is this job's until hashed_ moves on.
        if (r && turn) hash(*job);
        {
            std::lock_guard lock(mutex_);
            if (!r) job->error = r.error();
            job->done = true;
            if (turn) ++hashed_;
        }
        hash_turn_.notify_all();
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
    job->input.clear();
    job->done = false;
    job->error.clear();
    return job;
}

Result<void> GzipCompressor::fail(std::string message) {
    error_ = std::move(message);
    return Unexpected(*error_);
}

// Where the block ends in the stream, and its key when the plan has one for a block that
// ends where this one does. Once a block ends elsewhere, the plan is not used again: its keys
// would name other bytes.
void GzipCompressor::place(Job& job) {
    input_end_ += job.input.size();
    job.input_end = input_end_;
    job.key_known = false;
    if (plan_ && block_index_ < plan_->size() && (*plan_)[block_index_].input_end == input_end_) {
        job.key = (*plan_)[block_index_].key;
        job.key_known = !job.key.empty();
    } else {
        plan_ = nullptr;
    }
    ++block_index_;
}

// Both hashes over the block (the stream's input, and the member as it will be written),
// and their midstates there for the report. Called for each block in stream order: by
// submit() in single-threaded mode, else by the workers in turn.
void GzipCompressor::hash(Job& job) {
    job.input_state.clear();
    job.blob_state.clear();
    if (input_sha_) input_sha_->update(job.input.data(), job.input.size());
    if (output_sha_) output_sha_->update(job.output.data(), job.output_size);
    if (report_ && input_sha_) job.input_state = input_sha_->state().text();
    if (report_ && input_sha_ && output_sha_) job.blob_state = output_sha_->state().text();
}

// Hands the current block to the workers (or compresses it here), starts the next one, and
// writes finished members once too many are in flight.
Result<void> GzipCompressor::submit() {
    place(*current_);
    Job* job = current_.get();
    in_flight_.push_back(std::move(current_));
    submitted_any_ = true;
    if (inline_deflater_) {
        if (auto r = inline_deflater_->process(*job); !r)
            job->error = r.error();
        else
            hash(*job);
        job->done = true;
    } else {
        {
            std::lock_guard lock(mutex_);
            job->sequence = submitted_++;
            queue_.push_back(job);
        }
        work_ready_.notify_one();
    }
    current_ = take_job();
    while (in_flight_.size() >= max_in_flight_)
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
    auto out = std::string_view(reinterpret_cast<const char*>(job.output.data()), job.output_size);
    if (auto r = sink_(out); !r) return fail(r.error());
    if (report_) {
        report_->map.blocks.push_back({.key = job.key,
                                       .offset = offset_,
                                       .size = job.output_size,
                                       .input_end = job.input_state.empty() ? 0 : job.input_end,
                                       .input_state = job.input_state,
                                       .blob_state = job.blob_state});
        if (job.reused) {
            report_->reused++;
            report_->reused_input_bytes += job.input.size();
        }
    }
    offset_ += job.output_size;
    spare_.push_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
    return {};
}

Result<void> GzipCompressor::write(std::string_view bytes) {
    if (error_) return Unexpected(*error_);
    if (finished_) return fail("gzip: write after finish");
    while (!bytes.empty()) {
        auto n = std::min(bytes.size(), gzip_block_size - current_->input.size());
        // Through unsigned char pointers: from a char iterator the insert would convert byte
        // by byte instead of one memcpy.
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
        current_->input.insert(current_->input.end(), p, p + n);
        bytes.remove_prefix(n);
        if (current_->input.size() == gzip_block_size)
            if (auto r = submit(); !r) return r;
    }
    return {};
}

Result<void> GzipCompressor::cut() {
    if (error_) return Unexpected(*error_);
    if (finished_) return fail("gzip: cut after finish");
    if (current_->input.size() < gzip_min_cut) return {};
    return submit();
}

Result<void> GzipCompressor::finish() {
    if (error_) return Unexpected(*error_);
    if (finished_) return fail("gzip: finish called twice");
    finished_ = true;
    // An empty stream is still one (empty) member: gzip readers reject zero bytes.
    if (!current_->input.empty() || !submitted_any_)
        if (auto r = submit(); !r) return r;
    while (!in_flight_.empty())
        if (auto r = emit_oldest(); !r) return r;
    return {};
}

unsigned effective_threads(unsigned requested) {
    unsigned n = requested != 0 ? requested : std::thread::hardware_concurrency();
    return std::clamp(n, 1u, max_threads);
}

} // namespace

Result<std::unique_ptr<Compressor>>
make_block_compressor(Sink sink, std::function<std::unique_ptr<BlockCodec>()> make_codec,
                      std::string format, BlockOptions options) {
    return std::make_unique<GzipCompressor>(std::move(sink), options,
                                            effective_threads(options.threads),
                                            std::move(make_codec), std::move(format));
}

Result<std::unique_ptr<Compressor>> make_gzip_compressor(Sink sink, GzipOptions options) {
    int level = options.level == -1 ? 6 : options.level;
    if (level < 1 || level > 9)
        return Unexpected("gzip level must be 1..9, not " + std::to_string(level));
    return make_block_compressor(
        std::move(sink), [level] { return std::make_unique<GzipCodec>(level); },
        gzip_block_format(level), std::move(options));
}

std::string gzip_block_format(int level) {
    // The cut rule's version is part of it: layer_writer.cpp's cut_before and gzip_min_cut.
    return "gzip-members/1 cut/1 libdeflate-" LIBDEFLATE_VERSION_STRING " level-" +
           std::to_string(level);
}

} // namespace factory::layer
