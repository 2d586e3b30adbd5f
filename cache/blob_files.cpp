#include "cache/blob_files.hpp"

#include "cache/blob_store.hpp"
#include "cache/sharded.hpp"
#include "factory/util/files.hpp"

#include <unistd.h>

namespace factory::cache {

namespace fs = std::filesystem;

fs::path BlobFiles::path(std::string_view blob_hex) const {
    if (!is_sha256_hex(blob_hex))
        throw Error("invalid blob digest \"" + std::string(blob_hex.substr(0, 80)) + "\"");
    return dir_ / std::string(blob_hex.substr(0, 2)) / std::string(blob_hex);
}

void BlobFiles::put(std::string_view blob_hex, std::string_view bytes) const {
    auto p = path(blob_hex);
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
    if (ec) throw Error("cannot create " + p.parent_path().string() + ": " + ec.message());
    write_file_atomic(p, bytes);
}

Result<std::string> BlobFiles::read(std::string_view blob_hex) const {
    if (!is_sha256_hex(blob_hex)) return Unexpected("invalid blob digest");
    return read_file(path(blob_hex), max_size_);
}

std::vector<std::string> BlobFiles::list() const {
    std::vector<std::string> out;
    for_each_sharded(dir_, "",
                     [&](const std::string& hex, const fs::path&) { out.push_back(hex); });
    return out;
}

bool BlobFiles::remove(std::string_view blob_hex) const {
    if (!is_sha256_hex(blob_hex)) return false;
    return ::unlink(path(blob_hex).c_str()) == 0;
}

} // namespace factory::cache
