#include "factory/layer/layer_writer.hpp"

#include "factory/layer/block_plan.hpp"
#include "factory/layer/block_source.hpp"
#include "factory/layer/gzip.hpp"
#include "factory/layer/tar_writer.hpp"
#include "factory/layer/zstd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/sha256_midstate.hpp"

#include <cerrno>
#include <optional>
#include <unistd.h>

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

// The blob's end of the pipe: counted (and hashed, when `sha` is not null) as it is written.
class BlobOutput {
  public:
    BlobOutput(int fd, ResumableSha256* sha) : fd_(fd), sha_(sha) {}
    Result<void> write(std::string_view bytes) {
        if (sha_) sha_->update(bytes);
        size_ += bytes.size();
        if (auto r = write_all(fd_, bytes.data(), bytes.size()); !r)
            return Unexpected("cannot write layer blob: " + r.error());
        return {};
    }
    std::uint64_t size() const { return size_; }
    void add_size(std::uint64_t n) { size_ += n; }

  private:
    int fd_;
    ResumableSha256* sha_;
    std::uint64_t size_ = 0;
};

// Writes `entries` from `first` on through a tar writer into `compressor`, ending a block
// before each entry the cut rule picks (gzip, zstd), then finishes both.
Result<void> write_entries(const std::vector<Entry>& entries, std::size_t first, bool cuts,
                           const LayerOptions& options, Compressor& compressor,
                           ResumableSha256* tar_sha) {
    TarWriter tar(
        [&](std::string_view bytes) {
            if (tar_sha) tar_sha->update(bytes);
            return compressor.write(bytes);
        },
        options.epoch);
    tar.set_content(options.content);
    for (std::size_t i = first; i < entries.size(); ++i) {
        if (cuts && cut_before(entries[i].path)) {
            if (auto r = tar.flush(); !r) return r;
            if (auto r = compressor.cut(); !r) return r;
        }
        if (auto r = tar.add(entries[i]); !r) return r;
    }
    if (auto r = tar.finish(); !r) return r;
    return compressor.finish();
}

// Where a layer of blocks can start: after the leading blocks a previous layer of the step shares
// with this one (docs/performance.md "Incremental layers").
struct Resume {
    std::size_t blob = 0;             // in the BlockSource
    std::vector<cache::Block> prefix; // the shared blocks, as in that layer's map
    std::size_t first_entry = 0;      // the entries before it are in the prefix
    Sha256Midstate input, output;     // both hashes at the prefix's end
};

// How many leading blocks of `map` are those `plan` names: same keys (made from the entries,
// never from unread bytes) and same ends.
std::size_t shared_blocks(const cache::BlockMap& map, const std::vector<PlannedBlock>& plan) {
    std::size_t n = 0;
    while (n < map.blocks.size() && n < plan.size() && !plan[n].key.empty() &&
           plan[n].key == map.blocks[n].key && plan[n].input_end == map.blocks[n].input_end)
        ++n;
    return n;
}

// The longest resumable prefix among the source's maps: it must end between two entries (the
// tar writer starts at an entry) and leave at least the last block (the archive's end) to
// write. nullopt when there is none or its states don't parse.
std::optional<Resume> find_resume(const BlockSource& source,
                                  const std::vector<PlannedBlock>& plan) {
    std::optional<Resume> best;
    for (std::size_t m = 0; m < source.maps().size(); ++m) {
        const auto& map = source.maps()[m];
        if (!cache::has_midstates(map) || plan.size() < 2) continue;
        std::size_t k = std::min(shared_blocks(map, plan), plan.size() - 1);
        while (k > 0 && !plan[k - 1].entries_before)
            --k;
        if (k == 0 || (best && best->prefix.size() >= k)) continue;
        const auto& last = map.blocks[k - 1];
        auto input = Sha256Midstate::parse(last.input_state, last.input_end);
        auto output = Sha256Midstate::parse(last.blob_state, last.offset + last.size);
        if (!input || !output) continue;
        best = Resume{.blob = m,
                      .prefix = {map.blocks.begin(), map.blocks.begin() + std::ptrdiff_t(k)},
                      .first_entry = *plan[k - 1].entries_before,
                      .input = *input,
                      .output = *output};
    }
    return best;
}

// Copies the prefix's compressed bytes from the old blob to out_fd, hashing them: the result
// must be the map's midstate, or the blob or map is not what it claims and nothing is
// resumed. Returns the hash, ready to continue.
Result<ResumableSha256> copy_prefix(const BlockSource& source, const Resume& resume, int out_fd) {
    ResumableSha256 sha;
    std::vector<char> buf(1 << 20);
    std::uint64_t total = resume.output.bytes, done = 0;
    int in = source.blob_fd(resume.blob);
    while (done < total) {
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - done));
        auto n = ::pread(in, buf.data(), want, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected("cannot read a stored layer: " + errno_string(errno));
        if (n == 0) return Unexpected("a stored layer is shorter than its block map");
        sha.update(buf.data(), static_cast<std::size_t>(n));
        if (auto r = write_all(out_fd, buf.data(), static_cast<std::size_t>(n)); !r)
            return Unexpected("cannot write layer blob: " + r.error());
        done += static_cast<std::uint64_t>(n);
    }
    if (!(sha.state() == resume.output))
        return Unexpected("a stored layer's bytes are not those its block map hashed");
    return sha;
}

// A gzip or zstd layer: its blocks planned from the entries, resumed after the blocks the
// step's previous layer shares when there are such, else from the start.
Result<LayerInfo> write_block_layer(const std::vector<Entry>& entries, const LayerOptions& options,
                                    int out_fd) {
    auto plan = plan_gzip_blocks(entries, options.epoch);
    if (!plan) return Unexpected(plan.error());
    std::optional<Resume> resume;
    ResumableSha256 tar_sha, blob_sha;
    if (options.reuse) resume = find_resume(*options.reuse, *plan);
    if (resume) {
        off_t start = ::lseek(out_fd, 0, SEEK_CUR);
        auto copied = copy_prefix(*options.reuse, *resume, out_fd);
        if (copied) {
            tar_sha = ResumableSha256(resume->input);
            blob_sha = std::move(*copied);
        } else {
            // Only speed is lost: the layer is written whole, as a cold build would.
            resume.reset();
            if (start < 0 || ::ftruncate(out_fd, start) != 0 ||
                ::lseek(out_fd, start, SEEK_SET) != start)
                return Unexpected("cannot rewind the layer blob: " + errno_string(errno));
        }
    }
    BlobOutput blob(out_fd, nullptr);
    if (resume) blob.add_size(resume->output.bytes);
    BlockReport report;
    BlockOptions block_options{.level = options.level,
                               .threads = options.threads,
                               .reuse = options.reuse,
                               .report = &report,
                               .plan = &*plan,
                               .input_sha = &tar_sha,
                               .output_sha = &blob_sha,
                               .prefix = resume ? resume->prefix : std::vector<cache::Block>{}};
    Sink sink = [&blob](std::string_view bytes) { return blob.write(bytes); };
    auto compressor = options.compression == Compression::zstd
                          ? make_zstd_compressor(std::move(sink), std::move(block_options))
                          : make_gzip_compressor(std::move(sink), std::move(block_options));
    if (!compressor) return Unexpected(compressor.error());
    auto written = write_entries(entries, resume ? resume->first_entry : 0, true, options,
                                 **compressor, nullptr);
    if (!written) return Unexpected(written.error());
    return LayerInfo{.diff_id = "sha256:" + tar_sha.hex_digest(),
                     .digest = "sha256:" + blob_sha.hex_digest(),
                     .size = blob.size(),
                     .media_type = std::string(media_type(options.compression)),
                     .blocks = std::move(report.map),
                     .blocks_reused = report.reused,
                     .reused_input_bytes = report.reused_input_bytes,
                     .skipped_input_bytes = resume ? resume->input.bytes : 0};
}

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

std::string block_format(Compression compression, int level) {
    switch (compression) {
    case Compression::gzip:
        return gzip_block_format(level == -1 ? 6 : level);
    case Compression::zstd:
        return zstd_block_format(level == -1 ? 3 : level);
    case Compression::none:
        break;
    }
    return "";
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
    if (options.compression != Compression::none)
        return write_block_layer(*sorted, options, out_fd);
    ResumableSha256 tar_sha, blob_sha;
    BlobOutput blob(out_fd, &blob_sha);
    Passthrough compressor([&blob](std::string_view bytes) { return blob.write(bytes); });
    auto written = write_entries(*sorted, 0, false, options, compressor, &tar_sha);
    if (!written) return Unexpected(written.error());
    return LayerInfo{.diff_id = "sha256:" + tar_sha.hex_digest(),
                     .digest = "sha256:" + blob_sha.hex_digest(),
                     .size = blob.size(),
                     .media_type = std::string(media_type(Compression::none)),
                     .blocks = {},
                     .blocks_reused = 0,
                     .reused_input_bytes = 0,
                     .skipped_input_bytes = 0};
}

} // namespace factory::layer
