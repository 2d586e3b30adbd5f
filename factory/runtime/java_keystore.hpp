#pragma once
// Java's trust store as Debian writes it: ca-certificates-java turns /etc/ssl/certs into
// /etc/ssl/certs/java/cacerts, a JKS key store, when a JRE is installed. A JKS file records for
// each entry the time it was added, in milliseconds — the clock of the bootstrap or RUN step
// that wrote it, not SOURCE_DATE_EPOCH — so two builds of the same packages differ there and
// nowhere else. The normalization of docs/runtime.md sets every entry's date to the image's
// epoch and computes the file's integrity digest again.
//
// JKS (the JDK's sun.security.provider.JavaKeyStore): big-endian; magic FEEDFEED, version 1 or
// 2, entry count, then per entry a tag (2: trusted certificate), the alias (u16 length + UTF-8),
// the date (i64 ms), the certificate type (u16 length + UTF-8; version 2 only), the certificate
// (u32 length + DER); at the end SHA-1(password as UTF-16BE || "Mighty Aphrodite" || the bytes
// before it). Debian's store has the password "changeit", its documented default.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace factory::runtime {

// Where Debian's ca-certificates-java writes the store (relative to the root).
inline constexpr std::string_view java_cacerts_path = "etc/ssl/certs/java/cacerts";

// `bytes` with every entry's date set to epoch_seconds and the digest made again; nullopt when
// `bytes` is not a well-formed JKS store of trusted certificates whose digest checks with the
// password "changeit" (a private key, another password, trailing bytes): such a file is left
// as it is. The result has the same size as `bytes`.
std::optional<std::string> java_keystore_at_epoch(std::string_view bytes,
                                                  std::int64_t epoch_seconds);

} // namespace factory::runtime
