#include "factory/export/tar_writer.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <vector>

#include "factory/util/error.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"
#include "factory/util/archive_loader.hpp"

namespace factory::exporter {

namespace {
struct EntryFree {
    void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};
} // namespace

void TarWriter::Free::operator()(archive* a) const noexcept {
    archive_write_free(a);
}

TarWriter::TarWriter(int fd) : a_(archive_write_new()) {
    if (!a_) throw Error(archive_null_error());
    // pax_restricted: plain ustar headers, a PAX extended header only when an entry needs one
    // (long name, size over 8 GiB), so the bytes are what any reader expects.
    if (archive_write_set_format_pax_restricted(a_.get()) != ARCHIVE_OK ||
        archive_write_add_filter_none(a_.get()) != ARCHIVE_OK ||
        // No padding of the last block to 10 KiB: the archive ends after its two zero records.
        archive_write_set_bytes_in_last_block(a_.get(), 1) != ARCHIVE_OK ||
        archive_write_open_fd(a_.get(), fd) != ARCHIVE_OK)
        fail("cannot start a tar archive");
}

TarWriter::~TarWriter() = default;

void TarWriter::fail(const std::string& what) {
    const char* msg = a_ ? archive_error_string(a_.get()) : nullptr;
    throw Error(what + (msg ? std::string(": ") + msg : std::string()));
}

void TarWriter::header(const std::string& name, bool directory, std::uint64_t size) {
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    if (!e) throw Error(archive_null_error());
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), directory ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e.get(), directory ? 0755 : 0644);
    archive_entry_set_size(e.get(), directory ? 0 : static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e.get(), 0, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK)
        fail("cannot write the tar header of " + name);
}

void TarWriter::add_directory(const std::string& name) {
    header(name, true, 0);
}

void TarWriter::add_file(const std::string& name, std::string_view content) {
    header(name, false, content.size());
    if (!content.empty() && archive_write_data(a_.get(), content.data(), content.size()) !=
                                static_cast<la_ssize_t>(content.size()))
        fail("cannot write " + name + " into the tar archive");
}

void TarWriter::add_file_from_fd(const std::string& name, int fd, std::uint64_t size,
                                 std::string_view expected_sha256) {
    header(name, false, size);
    Sha256 hash;
    std::vector<char> buf(1 << 18);
    std::uint64_t left = size;
    while (left > 0) {
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
        auto n = read_some(fd, buf.data(), want);
        if (!n) throw Error("cannot read the content of " + name + ": " + n.error());
        if (*n == 0) throw Error(name + " is shorter than " + std::to_string(size) + " bytes");
        if (archive_write_data(a_.get(), buf.data(), *n) != static_cast<la_ssize_t>(*n))
            fail("cannot write " + name + " into the tar archive");
        hash.update(buf.data(), *n);
        left -= *n;
    }
    // A blob is verified when it is exported: a corrupt store blob never leaves the store.
    if (!expected_sha256.empty()) {
        auto got = hash.hex_digest();
        if (got != expected_sha256)
            throw Error("blob sha256:" + std::string(expected_sha256) +
                        " in the store is corrupt (its content hashes to sha256:" + got +
                        "); run `factory cache verify --repair` and build again");
    }
}

void TarWriter::finish() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) fail("cannot finish the tar archive");
}

} // namespace factory::exporter
