#include "cache/listings.hpp"

#include "factory/util/sha256.hpp"

namespace factory::cache {

namespace {

constexpr std::string_view magic = "factory-listing 1\n";
constexpr std::string_view end_word = "end ";
constexpr std::size_t trailer_size = 4 + 64 + 1; // "end " hex "\n"

} // namespace

std::string frame_listing(std::string_view body) {
    std::string out;
    out.reserve(magic.size() + body.size() + trailer_size);
    out += magic;
    out += body;
    auto sum = Sha256::hex(out);
    out += end_word;
    out += sum;
    out += '\n';
    return out;
}

Result<std::string> unframe_listing(std::string_view file) {
    if (!file.starts_with(magic))
        return Unexpected("not a listing (no \"factory-listing 1\" line)");
    if (file.size() < magic.size() + trailer_size || file.back() != '\n' ||
        file.substr(file.size() - trailer_size, end_word.size()) != end_word)
        return Unexpected("truncated (no end line)");
    if (Sha256::hex(file.substr(0, file.size() - trailer_size)) !=
        file.substr(file.size() - 65, 64))
        return Unexpected("checksum mismatch (edited or corrupt)");
    return std::string(file.substr(magic.size(), file.size() - magic.size() - trailer_size));
}

Listings::Listings(const std::filesystem::path& root)
    : files_(root / "listings", max_listing_size) {}

void Listings::put(std::string_view blob_hex, std::string_view body) const {
    files_.put(blob_hex, frame_listing(body));
}

Result<std::string> Listings::read(std::string_view blob_hex) const {
    auto file = files_.read(blob_hex);
    if (!file) return Unexpected(file.error());
    auto body = unframe_listing(*file);
    if (!body) return Unexpected(files_.path(blob_hex).string() + ": " + body.error());
    return body;
}

} // namespace factory::cache
