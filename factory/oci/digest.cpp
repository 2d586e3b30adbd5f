#include "factory/oci/digest.hpp"

#include "factory/oci/json_fields.hpp"
#include "factory/util/sha256.hpp"

namespace factory::oci {

namespace {

bool is_lower_hex(std::string_view s) {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return !s.empty();
}

} // namespace

Result<Digest> Digest::parse(std::string_view text) {
    auto colon = text.find(':');
    if (text.empty()) return Unexpected("invalid digest \"\": empty");
    if (colon == std::string_view::npos)
        return Unexpected("invalid digest " + detail::quote(text) + ": expected algorithm:hex");
    auto alg = text.substr(0, colon);
    auto enc = text.substr(colon + 1);
    std::size_t want = 0;
    if (alg == "sha256")
        want = 64;
    else if (alg == "sha512")
        want = 128;
    else
        return Unexpected("invalid digest " + detail::quote(text) + ": unsupported algorithm " +
                          detail::quote(alg) + " (sha256 or sha512)");
    if (enc.size() != want || !is_lower_hex(enc))
        return Unexpected("invalid digest " + detail::quote(text) + ": " + std::string(alg) +
                          " needs exactly " + std::to_string(want) + " lower-case hex digits");
    return Digest(std::string(alg), std::string(enc));
}

Digest Digest::from_sha256_hex(std::string_view hex) {
    if (hex.size() != 64 || !is_lower_hex(hex))
        throw Error("invalid sha256 hex " + detail::quote(hex));
    return Digest("sha256", std::string(hex));
}

Digest Digest::of(std::string_view bytes) {
    return Digest("sha256", Sha256::hex(bytes));
}

Result<std::string> Digest::sha256_hex() const {
    if (!is_sha256())
        return Unexpected("digest " + str().substr(0, 20) + "… uses " + algorithm_ +
                          ", which factory cannot verify (only sha256 content is supported)");
    return encoded_;
}

Result<std::string> sha256_hex_of(std::string_view digest) {
    auto d = Digest::parse(digest);
    if (!d) return Unexpected(d.error());
    return d->sha256_hex();
}

} // namespace factory::oci
