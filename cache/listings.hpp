#pragma once
// Listings (docs/cache.md "Listings"): for a layer blob, what reading its tar found in it —
// every entry's metadata and its place in the tar, none of the content — so that a build that
// needs a stage's file tree (a copy step resolving its destination through /bin → usr/bin, a
// stage others copy from) reads one small file instead of inflating and hashing the layer again.
//
//   listings/<hh>/<blob hex>   the listing of blob <blob hex>       (format: listing 1)
//
// cache/ knows nothing of tar: the body is bytes the builder made (builder/tree.hpp
// serialize_listing), kept in a frame that names the format and checksums the body, so a
// truncated or damaged file is never handed back. Like a block map, a listing is derived data:
// it lives and dies with its blob, and a missing or bad one only costs reading the layer again.

#include "cache/blob_files.hpp"
#include "factory/util/error.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace factory::cache {

// The largest listing read back: a million entries (the tree's cap on a layer) of ~100 bytes.
inline constexpr std::uint64_t max_listing_size = 256u << 20;

// The file's bytes: "factory-listing 1\n" BODY "end " sha256-hex-of-everything-before "\n".
std::string frame_listing(std::string_view body);
// The body back; an error for another magic, a missing end line or a checksum that fails.
Result<std::string> unframe_listing(std::string_view file);

class Listings {
  public:
    explicit Listings(const std::filesystem::path& root);

    std::filesystem::path path(std::string_view blob_hex) const { return files_.path(blob_hex); }
    // Publishes the listing of a blob in the store (AtomicFile). Throws Error.
    void put(std::string_view blob_hex, std::string_view body) const;
    // The body of blob_hex's listing; an error when there is none or it is damaged.
    Result<std::string> read(std::string_view blob_hex) const;
    std::vector<std::string> list() const { return files_.list(); }
    bool remove(std::string_view blob_hex) const { return files_.remove(blob_hex); }

  private:
    BlobFiles files_;
};

} // namespace factory::cache
