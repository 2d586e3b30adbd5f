#include "factory/runtime/java_keystore.hpp"

#include <openssl/evp.h>

#include <array>
#include <vector>

namespace factory::runtime {

namespace {

constexpr std::size_t digest_size = 20; // SHA-1

struct Reader {
    std::string_view bytes;
    std::size_t at = 0;

    bool take(std::size_t n) {
        if (bytes.size() - at < n) return false;
        at += n;
        return true;
    }
    std::optional<std::uint64_t> number(std::size_t width) {
        if (bytes.size() - at < width) return std::nullopt;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < width; ++i)
            v = v << 8 | static_cast<unsigned char>(bytes[at + i]);
        at += width;
        return v;
    }
};

// SHA-1 of the password "changeit" as UTF-16BE, the whitener and `body`.
std::optional<std::array<unsigned char, digest_size>> keystore_digest(std::string_view body) {
    static constexpr std::string_view password = "changeit";
    static constexpr std::string_view whitener = "Mighty Aphrodite";
    std::string prefix;
    for (char c : password) {
        prefix.push_back('\0');
        prefix.push_back(c);
    }
    prefix += whitener;
    std::array<unsigned char, digest_size> out{};
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr) == 1 &&
              EVP_DigestUpdate(ctx, prefix.data(), prefix.size()) == 1 &&
              EVP_DigestUpdate(ctx, body.data(), body.size()) == 1 &&
              EVP_DigestFinal_ex(ctx, out.data(), nullptr) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return std::nullopt;
    return out;
}

void put_be64(std::string& s, std::size_t at, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        s[at + static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
        v >>= 8;
    }
}

} // namespace

std::optional<std::string> java_keystore_at_epoch(std::string_view bytes,
                                                  std::int64_t epoch_seconds) {
    if (epoch_seconds < 0 || bytes.size() < digest_size) return std::nullopt;
    Reader r{bytes.substr(0, bytes.size() - digest_size)};
    auto magic = r.number(4), version = r.number(4), count = r.number(4);
    if (!magic || *magic != 0xFEEDFEED || !version || (*version != 1 && *version != 2) || !count)
        return std::nullopt;
    std::vector<std::size_t> dates;
    for (std::uint64_t i = 0; i < *count; ++i) {
        auto tag = r.number(4);
        if (!tag || *tag != 2) return std::nullopt; // only trusted certificates
        auto alias = r.number(2);
        if (!alias || !r.take(*alias)) return std::nullopt;
        dates.push_back(r.at);
        if (!r.take(8)) return std::nullopt;
        if (*version == 2) {
            auto type = r.number(2);
            if (!type || !r.take(*type)) return std::nullopt;
        }
        auto cert = r.number(4);
        if (!cert || !r.take(*cert)) return std::nullopt;
    }
    if (r.at != r.bytes.size()) return std::nullopt; // something after the entries
    auto digest = keystore_digest(r.bytes);
    if (!digest ||
        bytes.substr(r.at) !=
            std::string_view(reinterpret_cast<const char*>(digest->data()), digest->size()))
        return std::nullopt;

    std::string out(bytes);
    auto ms = static_cast<std::uint64_t>(epoch_seconds) * 1000;
    for (auto at : dates)
        put_be64(out, at, ms);
    auto again = keystore_digest(std::string_view(out).substr(0, r.at));
    if (!again) return std::nullopt;
    out.replace(r.at, digest_size, reinterpret_cast<const char*>(again->data()), digest_size);
    return out;
}

} // namespace factory::runtime
