// sources/debian_release: the Date field of a mirror's InRelease / Release as RFC 3339 UTC, the
// snapshot.debian.org time of a date.
#include "factory/sources/debian_release.hpp"

#include <gtest/gtest.h>

using namespace factory;
using namespace factory::sources;

namespace {

// The head of bookworm's InRelease as deb.debian.org serves it.
const char* const in_release = R"(-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Label: Debian
Suite: stable
Version: 12.8
Codename: bookworm
Changelogs: https://metadata.ftp-master.debian.org/changelogs/@CHANGEPATH@_changelog
Date: Sat, 09 Nov 2024 10:12:04 UTC
Acquire-By-Hash: yes
No-Support-for-Architecture-all: Packages
Architectures: all amd64 arm64 armel armhf i386 mips64el mipsel ppc64el s390x
Components: main contrib non-free-firmware non-free
Description: Debian 12.8 Released 09 November 2024
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEEpyNohvPMyq0Uiif4DphATThvodkFAmcvOFYACgkQDphATThv
-----END PGP SIGNATURE-----
)";

std::string date_or_error(std::string_view text) {
    auto d = release_date(text);
    return d ? *d : "error: " + d.error();
}

TEST(SourcesDebianRelease, DateOfASignedInRelease) {
    EXPECT_EQ(date_or_error(in_release), "2024-11-09T10:12:04Z");
}

TEST(SourcesDebianRelease, DateOfAPlainRelease) {
    EXPECT_EQ(date_or_error("Origin: Debian\nDate: Mon, 01 Jan 2024 00:00:00 UTC\n"),
              "2024-01-01T00:00:00Z");
    // CRLF lines, no weekday, a numeric zone: converted to UTC.
    EXPECT_EQ(date_or_error("Origin: x\r\nDate: 1 Mar 2024 01:30:00 +0200\r\n"),
              "2024-02-29T23:30:00Z");
    EXPECT_EQ(date_or_error("Date: Sun, 31 Dec 2023 23:00:00 -0130\n"), "2024-01-01T00:30:00Z");
}

TEST(SourcesDebianRelease, OnlyTheReleaseParagraphsDate) {
    // An armor header or a file list line that merely contains "Date:" is not the field.
    EXPECT_EQ(date_or_error("-----BEGIN PGP SIGNED MESSAGE-----\nDate: Mon, 01 Jan 2024 "
                            "00:00:00 UTC\n\nOrigin: Debian\n MD5Sum: Date: x\n"),
              "error: no Date field");
    EXPECT_EQ(date_or_error("Origin: Debian\nValid-Until: Sat, 16 Nov 2024 10:12:04 UTC\n"),
              "error: no Date field");
}

TEST(SourcesDebianRelease, BadDatesAreQuoted) {
    EXPECT_EQ(date_or_error("Date: yesterday\n"), "error: invalid Date \"yesterday\"");
    EXPECT_EQ(date_or_error("Date: Sat, 31 Feb 2024 10:12:04 UTC\n"),
              "error: invalid Date \"Sat, 31 Feb 2024 10:12:04 UTC\"");
    EXPECT_EQ(date_or_error("Date: Sat, 09 Nov 2024 25:12:04 UTC\n"),
              "error: invalid Date \"Sat, 09 Nov 2024 25:12:04 UTC\"");
    EXPECT_EQ(date_or_error("Date: Sat, 09 Nov 2024 10:12:04 CET\n"),
              "error: invalid Date \"Sat, 09 Nov 2024 10:12:04 CET\"");
}

TEST(SourcesDebianRelease, SnapshotTime) {
    EXPECT_EQ(snapshot_time("2024-11-09T10:12:04Z"), "20241109T101204Z");
}

TEST(SourcesDebianRelease, OfflineAsksNothing) {
    DownloadOptions o;
    o.offline = true;
    auto d = fetch_release_date("http://127.0.0.1:9/debian", "bookworm", o);
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error(),
              "offline: cannot fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease");
}

} // namespace
