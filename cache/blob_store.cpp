#include "cache/blob_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "factory/util/files.hpp"

namespace factory::cache {

namespace {

constexpr std::size_t io_chunk = 1 << 18;

std::string hash_fd(int fd, const fs::path& what, Result<void>& status) {
    Sha256 h;
    std::vector<char> buf(io_chunk);
    for (;;) {
        auto n = read_some(fd, buf.data(), buf.size());
        if (!n) {
            status = Unexpected("cannot read " + what.string() + ": " + n.error());
            return {};
        }
        if (*n == 0) break;
        h.update(buf.data(), *n);
    }
    return h.hex_digest();
}

// Opens an existing regular file without following a symlink in the last component.
Result<Fd> open_regular(const fs::path& p, struct stat& st) {
    Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return Unexpected("cannot open " + p.string() + ": " + errno_string(errno));
    if (::fstat(fd.get(), &st) != 0)
        return Unexpected("cannot stat " + p.string() + ": " + errno_string(errno));
    if (!S_ISREG(st.st_mode)) return Unexpected(p.string() + " is not a regular file");
    return fd;
}

} // namespace

bool is_sha256_hex(std::string_view s) noexcept {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

BlobStore::BlobStore(fs::path blobs_sha256_dir, fs::path tmp_dir)
    : dir_(std::move(blobs_sha256_dir)), tmp_(std::move(tmp_dir)) {}

fs::path BlobStore::path(std::string_view hex) const {
    if (!is_sha256_hex(hex))
        throw Error("invalid sha256 blob name \"" + std::string(hex.substr(0, 80)) +
                    "\": expected 64 lower-case hex digits");
    return dir_ / std::string(hex);
}

bool BlobStore::has(std::string_view hex) const {
    if (!is_sha256_hex(hex)) return false;
    struct stat st {};
    return ::lstat(path(hex).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<Fd> BlobStore::open(std::string_view hex) const {
    if (!is_sha256_hex(hex))
        return Unexpected("invalid sha256 blob name \"" + std::string(hex) + "\"");
    struct stat st {};
    return open_regular(path(hex), st);
}

Result<std::uint64_t> BlobStore::size(std::string_view hex) const {
    if (!is_sha256_hex(hex))
        return Unexpected("invalid sha256 blob name \"" + std::string(hex) + "\"");
    struct stat st {};
    auto p = path(hex);
    if (::lstat(p.c_str(), &st) != 0)
        return Unexpected("cannot stat " + p.string() + ": " + errno_string(errno));
    if (!S_ISREG(st.st_mode)) return Unexpected(p.string() + " is not a regular file");
    return static_cast<std::uint64_t>(st.st_size);
}

Result<std::string> BlobStore::read(std::string_view hex, std::uint64_t max_size) const {
    return read_checked(hex, max_size, std::nullopt);
}

Result<std::string> BlobStore::read_exact(std::string_view hex, std::uint64_t size) const {
    return read_checked(hex, size, size);
}

Result<std::string> BlobStore::read_checked(std::string_view hex, std::uint64_t max_size,
                                            std::optional<std::uint64_t> exact) const {
    if (!is_sha256_hex(hex))
        return Unexpected("invalid sha256 blob name \"" + std::string(hex) + "\"");
    auto p = path(hex);
    struct stat st {};
    auto fd = open_regular(p, st);
    if (!fd) return Unexpected(fd.error());
    auto actual = static_cast<std::uint64_t>(st.st_size);
    // Size before content (descriptor.md): a size lie is found without reading the blob.
    if (exact && actual != *exact)
        return Unexpected(p.string() + ": size is " + std::to_string(actual) +
                          " bytes, its descriptor says " + std::to_string(*exact));
    if (actual > max_size)
        return Unexpected(p.string() + ": size is " + std::to_string(actual) +
                          " bytes, over the limit of " + std::to_string(max_size));
    std::string out;
    out.resize(static_cast<std::size_t>(actual));
    std::size_t got = 0;
    while (got < out.size()) {
        auto n = read_some(fd->get(), out.data() + got, out.size() - got);
        if (!n) return Unexpected("cannot read " + p.string() + ": " + n.error());
        if (*n == 0) break;
        got += *n;
    }
    char extra;
    if (got != out.size() || read_some(fd->get(), &extra, 1).value_or(0) != 0)
        return Unexpected(p.string() + ": size changed while reading");
    auto digest = Sha256::hex(out);
    if (digest != hex)
        return Unexpected(p.string() + ": content does not match its digest (got sha256:" + digest +
                          ")");
    return out;
}

std::string BlobStore::put(std::string_view bytes) {
    auto hex = Sha256::hex(bytes);
    if (has(hex)) return hex;
    AtomicFile f(path(hex), blob_mode);
    f.write(bytes);
    f.commit();
    return hex;
}

BlobStore::Writer BlobStore::writer() {
    auto temp = tmp_ / (std::string(temp_prefix) + "blob-" + unique_suffix());
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, blob_mode));
    if (!fd) throw Error("cannot create " + temp.string() + ": " + errno_string(errno));
    ::fchmod(fd.get(), blob_mode); // not subject to the umask
    return Writer(*this, std::move(temp), std::move(fd));
}

BlobStore::Writer::Writer(BlobStore& store, fs::path temp, Fd fd)
    : store_(&store), temp_(std::move(temp)), fd_(std::move(fd)) {}

BlobStore::Writer::Writer(Writer&& o) noexcept
    : store_(o.store_), temp_(std::move(o.temp_)), fd_(std::move(o.fd_)), hash_(std::move(o.hash_)),
      size_(o.size_), raw_fd_used_(o.raw_fd_used_), done_(o.done_) {
    o.done_ = true; // the moved-from object owns no temp file
}

BlobStore::Writer::~Writer() {
    if (!done_) ::unlink(temp_.c_str());
}

void BlobStore::Writer::write(const void* data, std::size_t size) {
    if (done_) throw Error("write to a committed blob writer");
    if (auto r = write_all(fd_.get(), data, size); !r)
        throw Error("cannot write " + temp_.string() + ": " + r.error());
    hash_.update(data, size);
    size_ += size;
}

int BlobStore::Writer::fd() {
    raw_fd_used_ = true;
    return fd_.get();
}

std::string BlobStore::Writer::finish_hash() {
    if (::fsync(fd_.get()) != 0)
        throw Error("cannot fsync " + temp_.string() + ": " + errno_string(errno));
    if (!raw_fd_used_) return hash_.hex_digest();
    // Someone wrote through fd(): the streaming hash saw only part of the bytes.
    auto hex = sha256_file(temp_.string());
    if (!hex) throw Error(hex.error());
    struct stat st {};
    if (::fstat(fd_.get(), &st) == 0) size_ = static_cast<std::uint64_t>(st.st_size);
    return *hex;
}

std::string BlobStore::Writer::publish(const std::string& hex) {
    fd_.reset();
    done_ = true;
    auto target = store_->path(hex);
    if (store_->has(hex)) { // someone else stored the same content first: keep theirs
        ::unlink(temp_.c_str());
        return hex;
    }
    if (::rename(temp_.c_str(), target.c_str()) != 0) {
        int err = errno;
        ::unlink(temp_.c_str());
        throw Error("failed to rename " + temp_.string() + " to " + target.string() + ": " +
                    errno_string(err));
    }
    fsync_dir(store_->dir());
    return hex;
}

std::string BlobStore::Writer::commit() {
    if (done_) throw Error("blob writer committed twice");
    return publish(finish_hash());
}

Result<std::string> BlobStore::Writer::commit_verified(std::string_view expected_hex,
                                                       std::optional<std::uint64_t> expected_size) {
    if (done_) return Unexpected("blob writer committed twice");
    std::string hex;
    try {
        hex = finish_hash();
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
    if (expected_size && size_ != *expected_size) {
        return Unexpected("blob sha256:" + std::string(expected_hex) + " has " +
                          std::to_string(size_) + " bytes, expected " +
                          std::to_string(*expected_size));
    }
    if (hex != expected_hex)
        return Unexpected("blob sha256:" + std::string(expected_hex) +
                          " does not match its content: content hashes to sha256:" + hex);
    try {
        return publish(hex);
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
}

void BlobStore::commit_temp(const fs::path& temp, std::string_view hex) {
    auto target = path(hex); // validates hex first
    {
        Fd fd(::open(temp.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd) throw Error("cannot open " + temp.string() + ": " + errno_string(errno));
        if (::fsync(fd.get()) != 0)
            throw Error("cannot fsync " + temp.string() + ": " + errno_string(errno));
        ::fchmod(fd.get(), blob_mode);
    }
    if (has(hex)) {
        ::unlink(temp.c_str());
        return;
    }
    if (::rename(temp.c_str(), target.c_str()) != 0)
        throw Error("failed to rename " + temp.string() + " to " + target.string() + ": " +
                    errno_string(errno));
    fsync_dir(dir_);
}

Result<void> BlobStore::add_file(const fs::path& file, std::string_view hex, std::uint64_t size,
                                 Transfer how) {
    if (!is_sha256_hex(hex))
        return Unexpected("invalid sha256 blob name \"" + std::string(hex) + "\"");
    if (has(hex)) return {};
    if (how == Transfer::link_or_copy) {
        struct stat st {};
        if (::lstat(file.c_str(), &st) != 0)
            return Unexpected("cannot stat " + file.string() + ": " + errno_string(errno));
        if (!S_ISREG(st.st_mode)) return Unexpected(file.string() + " is not a regular file");
        if (static_cast<std::uint64_t>(st.st_size) != size)
            return Unexpected(file.string() + ": size is " + std::to_string(st.st_size) +
                              " bytes, its descriptor says " + std::to_string(size));
        // link() publishes a complete file atomically; EEXIST means a concurrent writer won.
        if (::link(file.c_str(), path(hex).c_str()) == 0 || errno == EEXIST) {
            fsync_dir(dir_);
            return {};
        }
        // EXDEV (another file system), EPERM (protected_hardlinks, fs without links): copy.
    }
    return copy_in(file, hex, size);
}

Result<void> BlobStore::copy_in(const fs::path& file, std::string_view hex, std::uint64_t size) {
    struct stat st {};
    auto in = open_regular(file, st);
    if (!in) return Unexpected(in.error());
    if (static_cast<std::uint64_t>(st.st_size) != size)
        return Unexpected(file.string() + ": size is " + std::to_string(st.st_size) +
                          " bytes, its descriptor says " + std::to_string(size));
    try {
        auto w = writer();
        std::vector<char> buf(io_chunk);
        for (;;) {
            auto n = read_some(in->get(), buf.data(), buf.size());
            if (!n) return Unexpected("cannot read " + file.string() + ": " + n.error());
            if (*n == 0) break;
            w.write(buf.data(), *n);
        }
        auto r = w.commit_verified(hex, size);
        if (!r) return Unexpected(file.string() + ": " + r.error());
    } catch (const Error& e) {
        return Unexpected(e.what());
    }
    return {};
}

Result<void> BlobStore::verify(std::string_view hex) const {
    if (!is_sha256_hex(hex))
        return Unexpected("invalid sha256 blob name \"" + std::string(hex) + "\"");
    struct stat st {};
    auto p = path(hex);
    auto fd = open_regular(p, st);
    if (!fd) return Unexpected(fd.error());
    Result<void> status;
    auto actual = hash_fd(fd->get(), p, status);
    if (!status) return status;
    if (actual != hex)
        return Unexpected("blob sha256:" + std::string(hex) +
                          " is corrupt: content hashes to sha256:" + actual);
    return {};
}

} // namespace factory::cache
