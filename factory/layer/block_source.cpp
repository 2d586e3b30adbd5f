#include "factory/layer/block_source.hpp"

#include <cerrno>
#include <unistd.h>

namespace factory::layer {

bool BlockSource::add(Fd blob, const cache::BlockMap& map) {
    if (map.format != format_ || !blob) return false;
    std::size_t index = blobs_.size();
    blobs_.push_back(std::move(blob));
    for (const auto& b : map.blocks)
        where_.try_emplace(b.key, Found{index, b.offset, b.size});
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
    return {};
}

} // namespace factory::layer
