#include "factory/util/sha256.hpp"

#include <fcntl.h>
#include <openssl/evp.h>

#include <array>
#include <vector>

#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

namespace factory {

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const noexcept {
    EVP_MD_CTX_free(ctx);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
        throw Error("OpenSSL: cannot initialise SHA-256");
}
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
Sha256::~Sha256() = default;

void Sha256::update(const void* data, std::size_t size) {
    if (size != 0) EVP_DigestUpdate(ctx_.get(), data, size);
}

std::string Sha256::hex_digest() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md.data(), &len);
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned i = 0; i < len; ++i) {
        out.push_back(digits[md[i] >> 4]);
        out.push_back(digits[md[i] & 15]);
    }
    return out;
}

std::string Sha256::hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.hex_digest();
}

Result<std::string> sha256_file(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return Unexpected("cannot open " + path + ": " + errno_string(errno));
    Sha256 h;
    std::vector<char> buf(1 << 18);
    for (;;) {
        auto n = read_some(fd.get(), buf.data(), buf.size());
        if (!n) return Unexpected("cannot read " + path + ": " + n.error());
        if (*n == 0) break;
        h.update(buf.data(), *n);
    }
    return h.hex_digest();
}

} // namespace factory
