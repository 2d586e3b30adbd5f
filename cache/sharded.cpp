#include "cache/sharded.hpp"

#include "cache/blob_store.hpp"

namespace factory::cache {

namespace fs = std::filesystem;

void for_each_sharded(const fs::path& dir, std::string_view suffix,
                      const std::function<void(const std::string&, const fs::path&)>& fn) {
    std::error_code ec;
    for (fs::directory_iterator shard(dir, ec), end; !ec && shard != end; shard.increment(ec)) {
        auto shard_name = shard->path().filename().string();
        if (shard_name.size() != 2) continue;
        std::error_code ec2;
        for (fs::directory_iterator it(shard->path(), ec2); !ec2 && it != end; it.increment(ec2)) {
            auto name = it->path().filename().string();
            if (name.size() != 64 + suffix.size() || !name.ends_with(suffix)) continue;
            auto hex = name.substr(0, 64);
            if (!is_sha256_hex(hex) || hex.compare(0, 2, shard_name) != 0) continue;
            fn(hex, it->path());
        }
    }
}

} // namespace factory::cache
