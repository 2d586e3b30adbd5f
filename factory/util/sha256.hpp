#pragma once
// Streaming SHA-256 (OpenSSL EVP).

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "factory/util/error.hpp"

struct evp_md_ctx_st;

namespace factory {

class Sha256 {
  public:
    Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    ~Sha256();

    void update(const void* data, std::size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    // Lower-case hex of the digest; the object can't be updated afterwards.
    std::string hex_digest();

    static std::string hex(std::string_view data);

  private:
    struct Free {
        void operator()(evp_md_ctx_st* ctx) const noexcept;
    };
    std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// sha256 hex of a file's content, read in chunks.
Result<std::string> sha256_file(const std::string& path);

} // namespace factory
