#pragma once
// Content digests as the image spec defines them (descriptor.md "Digests"), parsed strictly
// before any use in a path or URL (containers/image CVE-2024-3727).

#include <string>
#include <string_view>

#include "factory/util/error.hpp"

namespace factory::oci {

class Digest {
  public:
    // Accepts "sha256:" + 64 lower-case hex digits, and "sha512:" + 128 (readable, not
    // verifiable). Rejects upper case, other lengths, other characters, unknown algorithms and
    // the empty string, with a message quoting the input.
    static Result<Digest> parse(std::string_view text);
    // Throws Error unless hex is 64 lower-case hex digits.
    static Digest from_sha256_hex(std::string_view hex);
    // The sha256 digest of some bytes.
    static Digest of(std::string_view bytes);

    const std::string& algorithm() const noexcept { return algorithm_; }
    const std::string& encoded() const noexcept { return encoded_; }
    std::string str() const { return algorithm_ + ":" + encoded_; }
    bool is_sha256() const noexcept { return algorithm_ == "sha256"; }
    // The hex of a sha256 digest, or an error saying the algorithm can't be verified here.
    Result<std::string> sha256_hex() const;

    friend bool operator==(const Digest&, const Digest&) = default;

  private:
    Digest(std::string algorithm, std::string encoded)
        : algorithm_(std::move(algorithm)), encoded_(std::move(encoded)) {}
    std::string algorithm_;
    std::string encoded_;
};

// Shorthand: the sha256 hex of a digest string, for use as a blob name.
Result<std::string> sha256_hex_of(std::string_view digest);

} // namespace factory::oci
