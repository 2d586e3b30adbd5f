#include "factory/layer/block_plan.hpp"

#include "factory/layer/gzip.hpp"
#include "factory/layer/layer_writer.hpp"
#include "factory/layer/tar_writer.hpp"
#include "factory/util/sha256.hpp"

namespace factory::layer {

namespace {

void put_u64(Sha256& sha, std::uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i)
        b[i] = static_cast<unsigned char>(v >> (8 * i));
    sha.update(b, sizeof b);
}

void append_u64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<char>(v >> (8 * i)));
}

// One piece of the tar: an entry's record (headers, content, padding) or the archive's end.
struct Piece {
    std::string description; // what goes into the key of every block it overlaps
    std::uint64_t size = 0;
    bool known = true;
};

Result<Piece> piece_of(const Entry& entry, std::int64_t epoch) {
    std::uint64_t content = tar_content_size(entry);
    auto headers = tar_headers(entry, content, epoch);
    if (!headers) return Unexpected(headers.error());
    Piece p;
    p.size = headers->size() + (content + 511) / 512 * 512;
    std::string digest;
    if (entry.type == Entry::Type::file)
        digest = !entry.source.empty() ? (entry.sha256.empty() ? entry.content_id : entry.sha256)
                                       : Sha256::hex(entry.data);
    p.known = entry.type != Entry::Type::file || digest.size() == 64 ||
              (digest.starts_with("git-blob:") && digest.size() == 9 + 40);
    std::string& d = p.description;
    d.assign("entry\0", 6);
    append_u64(d, headers->size());
    d += *headers;
    append_u64(d, content);
    d += digest;
    return p;
}

// Builds the blocks piece by piece, with the compressor's rule: a block ends when it holds
// gzip_block_size bytes, or before an entry the cut rule picks once it holds gzip_min_cut.
class Planner {
  public:
    void cut(std::size_t entries_before) {
        if (pos_ - start_ >= gzip_min_cut) close(entries_before);
    }
    void add(const Piece& piece, std::size_t entries_after) {
        std::uint64_t begin = pos_, end = pos_ + piece.size;
        feed(piece, 0);
        while (end - start_ >= gzip_block_size) {
            pos_ = start_ + gzip_block_size;
            close(pos_ == end ? std::optional(entries_after) : std::nullopt);
            if (pos_ < end) feed(piece, pos_ - begin);
        }
        pos_ = end;
    }
    std::vector<PlannedBlock> finish(std::size_t entries) {
        if (pos_ > start_ || blocks_.empty()) close(entries);
        return std::move(blocks_);
    }

  private:
    // The piece overlaps the current block, which starts `offset` bytes into it when it is
    // the block's first piece.
    void feed(const Piece& piece, std::uint64_t offset) {
        if (!open_) {
            sha_ = Sha256();
            sha_.update(std::string_view("factory-block/1\0", 16));
            put_u64(sha_, offset);
            known_ = true;
            open_ = true;
        }
        sha_.update(piece.description);
        known_ = known_ && piece.known;
    }
    void close(std::optional<std::size_t> entries_before) {
        put_u64(sha_, pos_ - start_);
        PlannedBlock b{.input_end = pos_, .key = "", .entries_before = entries_before};
        std::string key = sha_.hex_digest();
        if (known_) b.key = std::move(key);
        blocks_.push_back(std::move(b));
        start_ = pos_;
        open_ = false;
    }

    std::uint64_t pos_ = 0, start_ = 0;
    Sha256 sha_;
    bool open_ = false, known_ = true;
    std::vector<PlannedBlock> blocks_;
};

} // namespace

Result<std::vector<PlannedBlock>> plan_gzip_blocks(const std::vector<Entry>& sorted,
                                                   std::int64_t epoch) {
    Planner planner;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        if (cut_before(sorted[i].path)) planner.cut(i);
        auto piece = piece_of(sorted[i], epoch);
        if (!piece) return Unexpected(piece.error());
        planner.add(*piece, i + 1);
    }
    Piece end;
    end.description.assign("end\0", 4);
    end.size = 1024;
    planner.add(end, sorted.size());
    return planner.finish(sorted.size());
}

} // namespace factory::layer
