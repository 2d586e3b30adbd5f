#include "factory/util/sha256_midstate.hpp"

// The legacy SHA256_* API is deprecated in OpenSSL 3 but kept: it is the one whose state is a
// plain, documented struct (openssl/sha.h), which is what a saved midstate needs. EVP keeps
// its state opaque.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstring>

namespace factory {

namespace {

constexpr char digits[] = "0123456789abcdef";

int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

} // namespace

struct ResumableSha256::Ctx {
    SHA256_CTX c;
};

std::string Sha256Midstate::text() const {
    std::string out;
    out.reserve(65 + 2 * tail.size());
    for (auto word : h)
        for (int shift = 28; shift >= 0; shift -= 4)
            out.push_back(digits[(word >> shift) & 15]);
    out.push_back('.');
    for (unsigned char c : tail) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

Result<Sha256Midstate> Sha256Midstate::parse(std::string_view text, std::uint64_t bytes) {
    std::size_t tail_size = bytes % 64;
    if (text.size() != 65 + 2 * tail_size || text[64] != '.')
        return Unexpected("a SHA-256 state after " + std::to_string(bytes) +
                          " bytes is 64 hex digits, '.' and " + std::to_string(2 * tail_size) +
                          " hex digits");
    Sha256Midstate s;
    s.bytes = bytes;
    for (std::size_t i = 0; i < 64; ++i) {
        int v = nibble(text[i]);
        if (v < 0) return Unexpected("a SHA-256 state has a character that is not hex");
        s.h[i / 8] = s.h[i / 8] << 4 | static_cast<std::uint32_t>(v);
    }
    for (std::size_t i = 65; i < text.size(); i += 2) {
        int hi = nibble(text[i]), lo = nibble(text[i + 1]);
        if (hi < 0 || lo < 0) return Unexpected("a SHA-256 state has a character that is not hex");
        s.tail.push_back(static_cast<char>(hi << 4 | lo));
    }
    return s;
}

ResumableSha256::ResumableSha256() : ctx_(std::make_unique<Ctx>()) {
    SHA256_Init(&ctx_->c);
}

ResumableSha256::ResumableSha256(const Sha256Midstate& state) : ResumableSha256() {
    if (state.tail.size() != state.bytes % 64)
        throw Error("SHA-256 state: " + std::to_string(state.tail.size()) +
                    " pending bytes after " + std::to_string(state.bytes) + " bytes");
    SHA256_CTX& c = ctx_->c;
    for (std::size_t i = 0; i < 8; ++i)
        c.h[i] = state.h[i];
    // Nl:Nh is the length in bits, 64 bits split in two words (md32_common.h).
    std::uint64_t bits = state.bytes << 3;
    c.Nl = static_cast<SHA_LONG>(bits & 0xffffffffu);
    c.Nh = static_cast<SHA_LONG>(state.bytes >> 29);
    std::memset(c.data, 0, sizeof c.data);
    std::memcpy(c.data, state.tail.data(), state.tail.size()); // kept as bytes, in order
    c.num = static_cast<unsigned>(state.tail.size());
}

ResumableSha256::ResumableSha256(ResumableSha256&&) noexcept = default;
ResumableSha256& ResumableSha256::operator=(ResumableSha256&&) noexcept = default;
ResumableSha256::~ResumableSha256() = default;

void ResumableSha256::update(const void* data, std::size_t size) {
    if (size != 0) SHA256_Update(&ctx_->c, data, size);
}

std::uint64_t ResumableSha256::bytes() const noexcept {
    return (std::uint64_t{ctx_->c.Nh} << 29) | (ctx_->c.Nl >> 3);
}

Sha256Midstate ResumableSha256::state() const {
    const SHA256_CTX& c = ctx_->c;
    Sha256Midstate s;
    for (std::size_t i = 0; i < 8; ++i)
        s.h[i] = c.h[i];
    s.bytes = bytes();
    s.tail.assign(reinterpret_cast<const char*>(c.data), c.num);
    return s;
}

std::string ResumableSha256::hex_digest() const {
    SHA256_CTX copy = ctx_->c;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_Final(md, &copy);
    std::string out;
    out.reserve(2 * sizeof md);
    for (unsigned char c : md) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

} // namespace factory
