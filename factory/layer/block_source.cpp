#include "factory/layer/block_source.hpp"

#include "factory/util/sha256_midstate.hpp"

#include <cerrno>
#include <unistd.h>

namespace factory::layer {

bool BlockSource::add(Fd blob, const cache::BlockMap& map) {
    if (map.format != format_ || !blob) return false;
    std::size_t index = blobs_.size();
    blobs_.push_back(std::move(blob));
    maps_.push_back(map);
    for (std::size_t i = 0; i < map.blocks.size(); ++i) {
        const auto& b = map.blocks[i];
        where_.try_emplace(b.key, Found{index, b.offset, b.size, i});
    }
    return true;
}

std::optional<BlockSource::Found> BlockSource::find(std::string_view key) const {
    auto it = where_.find(std::string(key));
    if (it == where_.end()) return std::nullopt;
    return it->second;
}

Result<void> BlockSource::read(const Found& found, std::vector<unsigned char>& out) const {
    out.resize(found.size);
    std::uint64_t done = 0;
    while (done < found.size) {
        auto n = ::pread(blobs_[found.blob].get(), out.data() + done, found.size - done,
                         static_cast<off_t>(found.offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected("cannot read a stored block: " + errno_string(errno));
        if (n == 0) return Unexpected("a stored block ends past its blob");
        done += static_cast<std::uint64_t>(n);
    }
    return check_bytes(found, out);
}

Result<void> BlockSource::check_bytes(const Found& found,
                                      const std::vector<unsigned char>& bytes) const {
    const auto& map = maps_[found.blob];
    if (!cache::has_midstates(map)) return {};
    const auto& block = map.blocks[found.index];
    ResumableSha256 sha;
    if (found.index > 0) {
        const auto& before = map.blocks[found.index - 1];
        auto start = Sha256Midstate::parse(before.blob_state, before.offset + before.size);
        if (!start) return Unexpected("a block map's state: " + start.error());
        sha = ResumableSha256(*start);
    }
    sha.update(bytes.data(), bytes.size());
    if (sha.state().text() != block.blob_state)
        return Unexpected("a stored block's bytes are not those its map hashed");
    return {};
}

} // namespace factory::layer
