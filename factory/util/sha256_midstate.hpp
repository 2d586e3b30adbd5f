#pragma once
// SHA-256 that can stop and resume: the state between two 64-byte blocks (FIPS 180-4 §6.2:
// the eight working words H0..H7) plus the bytes not yet in a block, so that a stream hashed
// up to a point can be continued later, in another process, from that saved state. The
// digest of a resumed stream is the digest of the whole stream: a function of its bytes only.
// Uses OpenSSL's SHA256_CTX (the SHA extensions where the CPU has them).

#include "factory/util/error.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace factory {

// A saved state after `bytes` bytes of a stream.
struct Sha256Midstate {
    std::array<std::uint32_t, 8> h{};
    std::uint64_t bytes = 0;
    std::string tail; // the last bytes % 64 bytes of the stream, not yet compressed

    bool operator==(const Sha256Midstate&) const = default;
    // "<64 hex of H0..H7 big-endian>.<hex of tail>" (the byte count is kept apart).
    std::string text() const;
    // The inverse, for a stream of `bytes` bytes; an error names what is wrong.
    static Result<Sha256Midstate> parse(std::string_view text, std::uint64_t bytes);
};

class ResumableSha256 {
  public:
    ResumableSha256();
    explicit ResumableSha256(const Sha256Midstate& state);
    ResumableSha256(ResumableSha256&&) noexcept;
    ResumableSha256& operator=(ResumableSha256&&) noexcept;
    ~ResumableSha256();

    void update(const void* data, std::size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    std::uint64_t bytes() const noexcept;
    Sha256Midstate state() const;
    // Lower-case hex of the digest of everything so far; the object stays usable (the
    // digest is taken on a copy).
    std::string hex_digest() const;

  private:
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
};

} // namespace factory
