#include "factory/layer/tar_writer.hpp"

#include "factory/layer/content_source.hpp"

#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace factory::layer {

namespace {

constexpr std::size_t block_size = 512;
constexpr std::size_t buffer_capacity = 1 << 20;
// Go's archive/tar refuses extended headers above 1 MiB; so do we (huge xattrs).
constexpr std::size_t max_pax_size = 1 << 20;

// POSIX.1-2001 pax, "ustar Interchange Format": header field offsets and sizes.
struct Field {
    std::size_t offset, size;
};
constexpr Field f_name{0, 100}, f_mode{100, 8}, f_uid{108, 8}, f_gid{116, 8}, f_size{124, 12},
    f_mtime{136, 12}, f_chksum{148, 8}, f_typeflag{156, 1}, f_linkname{157, 100}, f_magic{257, 6},
    f_version{263, 2}, f_devmajor{329, 8}, f_devminor{337, 8}, f_prefix{345, 155};

using Block = std::array<char, block_size>;

bool is_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c != '\0' && static_cast<unsigned char>(c) < 0x80; });
}

std::string to_ascii(std::string_view s) {
    std::string out;
    std::copy_if(s.begin(), s.end(), std::back_inserter(out),
                 [](char c) { return c != '\0' && static_cast<unsigned char>(c) < 0x80; });
    return out;
}

// An octal field holds size-1 digits and a NUL (the 12-byte fields: up to 8^11-1).
bool fits_octal(Field f, std::int64_t value) {
    return value >= 0 && value < (std::int64_t{1} << (3 * (f.size - 1)));
}

// Zero-padded octal ending in NUL; 0 when the value doesn't fit (a PAX record carries it).
void put_octal(Block& b, Field f, std::int64_t value) {
    if (!fits_octal(f, value)) value = 0;
    char digits[24];
    std::snprintf(digits, sizeof digits, "%0*llo", static_cast<int>(f.size - 1),
                  static_cast<unsigned long long>(value));
    std::memcpy(b.data() + f.offset, digits, f.size - 1);
    b[f.offset + f.size - 1] = '\0';
}

// Copies what fits; the block is zeroed, so a shorter string ends in NUL. A truncated name
// must not end in '/', which some readers take for a directory (Go does the same).
void put_string(Block& b, Field f, std::string_view s) {
    std::memcpy(b.data() + f.offset, s.data(), std::min(s.size(), f.size));
    if (s.size() > f.size && b[f.offset + f.size - 1] == '/') {
        auto kept = s.substr(0, f.size - 1);
        auto end = kept.find_last_not_of('/');
        std::size_t n = end == std::string_view::npos ? 0 : end + 1;
        b[f.offset + n] = '\0';
    }
}

void put_checksum(Block& b) {
    std::memset(b.data() + f_chksum.offset, ' ', f_chksum.size);
    unsigned sum = 0;
    for (char c : b)
        sum += static_cast<unsigned char>(c);
    // "%06o\0 ": six digits, NUL, and the space left from the blanking above.
    std::snprintf(b.data() + f_chksum.offset, 7, "%06o", sum);
}

void put_magic(Block& b) {
    std::memcpy(b.data() + f_magic.offset, "ustar", 6); // with its NUL
    std::memcpy(b.data() + f_version.offset, "00", 2);
}

// Where a long ASCII name splits into ustar prefix (<= 155) and name (<= 100): the last '/'
// that leaves both within bounds (Go's splitUSTARPath). nullopt if it can't.
std::optional<std::size_t> ustar_split(std::string_view name) {
    std::size_t length = name.size();
    if (length <= f_name.size || !is_ascii(name)) return std::nullopt;
    if (length > f_prefix.size + 1)
        length = f_prefix.size + 1;
    else if (name[length - 1] == '/')
        --length;
    auto i = name.substr(0, length).rfind('/');
    if (i == std::string_view::npos || i == 0) return std::nullopt;
    std::size_t suffix = name.size() - i - 1;
    if (suffix == 0 || suffix > f_name.size || i > f_prefix.size) return std::nullopt;
    return i;
}

// "<length> <keyword>=<value>\n", where length counts the whole record (pax "Extended
// Header Records").
std::string pax_record(std::string_view key, std::string_view value) {
    std::size_t size = key.size() + value.size() + 3; // ' ', '=', '\n'
    size += std::to_string(size).size();
    auto record = std::to_string(size) + " " + std::string(key) + "=" + std::string(value) + "\n";
    if (record.size() != size) // the length grew a digit
        record = std::to_string(record.size()) + " " + std::string(key) + "=" + std::string(value) +
                 "\n";
    return record;
}

bool dropped_xattr(std::string_view name) {
    return name.starts_with("trusted.overlay.");
}

// What one entry becomes in the archive.
struct Header {
    std::string name; // directories end in "/"
    char typeflag = '0';
    std::string linkname;
    std::uint64_t size = 0;
    std::vector<std::pair<std::string, std::string>> pax; // sorted by keyword; empty: ustar
};

char typeflag_of(Entry::Type type) {
    switch (type) {
    case Entry::Type::file:
        return '0';
    case Entry::Type::dir:
        return '5';
    case Entry::Type::symlink:
        return '2';
    case Entry::Type::hardlink:
        return '1';
    }
    return '0';
}

// The PAX records an entry needs if plain ustar can't hold it, following Go's choice of
// format: ustar whenever possible, else PAX with every record ustar couldn't hold.
std::vector<std::pair<std::string, std::string>> pax_records(const Entry& entry, const Header& h,
                                                             std::int64_t epoch) {
    std::vector<std::pair<std::string, std::string>> pax;
    bool ustar_ok = true;
    if (!is_ascii(h.name) || h.name.size() > f_name.size) {
        pax.emplace_back("path", h.name);
        ustar_ok = ustar_ok && ustar_split(h.name).has_value();
    }
    auto need = [&](bool needed, std::string key, std::string value) {
        if (!needed) return;
        pax.emplace_back(std::move(key), std::move(value));
        ustar_ok = false;
    };
    need(!is_ascii(h.linkname) || h.linkname.size() > f_linkname.size, "linkpath", h.linkname);
    need(h.size >= (std::uint64_t{1} << 33), "size", std::to_string(h.size));
    need(!fits_octal(f_uid, entry.uid), "uid", std::to_string(entry.uid));
    need(!fits_octal(f_gid, entry.gid), "gid", std::to_string(entry.gid));
    need(!fits_octal(f_mtime, epoch), "mtime", std::to_string(epoch));
    for (const auto& [name, value] : entry.xattrs)
        need(!dropped_xattr(name), "SCHILY.xattr." + name, value);
    if (ustar_ok) return {};
    std::sort(pax.begin(), pax.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return pax;
}

Header header_of(const Entry& entry, std::uint64_t size, std::int64_t epoch) {
    Header h;
    h.name = entry.type == Entry::Type::dir ? entry.path + "/" : entry.path;
    h.typeflag = typeflag_of(entry.type);
    if (entry.type == Entry::Type::symlink || entry.type == Entry::Type::hardlink)
        h.linkname = entry.link;
    h.size = size;
    h.pax = pax_records(entry, h, epoch);
    return h;
}

Block main_block(const Entry& entry, const Header& h, std::int64_t epoch) {
    Block b{};
    if (h.pax.empty()) {
        auto split = ustar_split(h.name);
        std::string_view name = h.name;
        if (split) {
            put_string(b, f_prefix, name.substr(0, *split));
            name = name.substr(*split + 1);
        }
        put_string(b, f_name, name);
        put_string(b, f_linkname, h.linkname);
    } else {
        // The PAX records are authoritative; ustar fields get a best-effort ASCII copy.
        put_string(b, f_name, to_ascii(h.name));
        put_string(b, f_linkname, to_ascii(h.linkname));
    }
    put_octal(b, f_mode, entry.mode);
    put_octal(b, f_uid, entry.uid);
    put_octal(b, f_gid, entry.gid);
    put_octal(b, f_size, h.size >= (std::uint64_t{1} << 33) ? -1 : std::int64_t(h.size));
    put_octal(b, f_mtime, epoch);
    b[f_typeflag.offset] = h.typeflag;
    put_magic(b);
    put_octal(b, f_devmajor, 0);
    put_octal(b, f_devminor, 0);
    put_checksum(b);
    return b;
}

// The extended header's name: "<dir>/PaxHeaders.0/<base>" (a directory "a/b/" gives
// "a/b/PaxHeaders.0"), ASCII only, at most 100 bytes, no trailing '/'. Readers ignore it;
// it only has to be fixed.
std::string pax_header_name(std::string_view name) {
    auto slash = name.rfind('/');
    std::string_view dir = slash == std::string_view::npos ? "" : name.substr(0, slash);
    std::string_view base = slash == std::string_view::npos ? name : name.substr(slash + 1);
    std::string joined = dir.empty() ? "PaxHeaders.0" : std::string(dir) + "/PaxHeaders.0";
    if (!base.empty()) joined += "/" + std::string(base);
    joined = to_ascii(joined);
    if (joined.size() > f_name.size) joined.resize(f_name.size);
    while (!joined.empty() && joined.back() == '/')
        joined.pop_back();
    return joined;
}

Block pax_block(const Header& h, std::size_t data_size) {
    Block b{};
    put_string(b, f_name, pax_header_name(h.name));
    put_octal(b, f_mode, 0);
    put_octal(b, f_uid, 0);
    put_octal(b, f_gid, 0);
    put_octal(b, f_size, static_cast<std::int64_t>(data_size));
    put_octal(b, f_mtime, 0);
    b[f_typeflag.offset] = 'x';
    put_magic(b);
    put_checksum(b);
    return b;
}

std::string describe_source(const Entry& entry) {
    return entry.source + " (for " + entry.path + ")";
}

bool same_time(const struct timespec& a, const struct timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

} // namespace

Result<std::string> tar_headers(const Entry& entry, std::uint64_t size, std::int64_t epoch) {
    Header h = header_of(entry, size, epoch);
    std::string out;
    if (!h.pax.empty()) {
        std::string data;
        for (const auto& [key, value] : h.pax)
            data += pax_record(key, value);
        if (data.size() > max_pax_size)
            return Unexpected("entry " + entry.path + ": extended header of " +
                              std::to_string(data.size()) + " bytes exceeds 1 MiB (xattrs?)");
        Block b = pax_block(h, data.size());
        out.append(b.data(), b.size());
        out += data;
        out.resize((out.size() + block_size - 1) / block_size * block_size, '\0');
    }
    Block b = main_block(entry, h, epoch);
    out.append(b.data(), b.size());
    return out;
}

std::uint64_t tar_content_size(const Entry& entry) {
    if (entry.type != Entry::Type::file) return 0;
    return entry.source.empty() ? entry.data.size() : entry.size;
}

TarWriter::TarWriter(Sink sink, std::int64_t epoch)
    : sink_(std::move(sink)), epoch_(epoch), buffer_(buffer_capacity) {}

TarWriter::~TarWriter() = default;

Result<void> TarWriter::flush() {
    if (used_ == 0) return {};
    auto r = sink_(std::string_view(buffer_.data(), used_));
    used_ = 0;
    return r;
}

Result<void> TarWriter::put(const void* data, std::size_t size) {
    auto p = static_cast<const char*>(data);
    while (size > 0) {
        if (used_ == buffer_.size())
            if (auto r = flush(); !r) return r;
        std::size_t n = std::min(size, buffer_.size() - used_);
        std::memcpy(buffer_.data() + used_, p, n);
        used_ += n;
        offset_ += n;
        p += n;
        size -= n;
    }
    return {};
}

Result<void> TarWriter::pad() {
    static constexpr Block zeros{};
    std::size_t partial = offset_ % block_size;
    return partial == 0 ? Result<void>{} : put(zeros.data(), block_size - partial);
}

Result<void> TarWriter::write_headers(const Entry& entry, std::uint64_t size) {
    auto headers = tar_headers(entry, size, epoch_);
    if (!headers) return Unexpected(headers.error());
    return put(headers->data(), headers->size());
}

template <class Read> Result<TarWriter::Filled> TarWriter::fill(std::uint64_t size, Read read) {
    Filled filled;
    while (filled.got < size) {
        if (used_ == buffer_.size())
            if (auto r = flush(); !r) return Unexpected(r.error());
        std::size_t want = std::min<std::uint64_t>(size - filled.got, buffer_.size() - used_);
        auto n = read(buffer_.data() + used_, want);
        if (!n) return Unexpected(n.error());
        if (*n == 0) return filled;
        used_ += *n;
        offset_ += *n;
        filled.got += *n;
    }
    char probe;
    auto n = read(&probe, 1);
    if (!n) return Unexpected(n.error());
    filled.longer = *n != 0;
    return filled;
}

// Reads exactly entry.size bytes straight into the output buffer, then checks the file ended
// there: a tar whose header promised another size would be corrupt.
Result<void> TarWriter::fill_from(int fd, const Entry& entry) {
    auto filled = fill(entry.size, [&](char* p, std::size_t n) -> Result<std::size_t> {
        auto got = read_some(fd, p, n);
        if (!got) return Unexpected("cannot read " + describe_source(entry) + ": " + got.error());
        return got;
    });
    if (!filled) return Unexpected(filled.error());
    if (filled->got < entry.size)
        return Unexpected(describe_source(entry) + " shrank while being read: expected " +
                          std::to_string(entry.size) + " bytes, got " +
                          std::to_string(filled->got));
    if (filled->longer)
        return Unexpected(describe_source(entry) + " grew while being read beyond " +
                          std::to_string(entry.size) + " bytes");
    return {};
}

Result<void> TarWriter::copy_source(const Entry& entry) {
    Fd fd(::open(entry.source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd)
        return Unexpected("cannot open " + describe_source(entry) + ": " + errno_string(errno));
    struct stat before {};
    if (::fstat(fd.get(), &before) != 0)
        return Unexpected("cannot stat " + describe_source(entry) + ": " + errno_string(errno));
    if (!S_ISREG(before.st_mode))
        return Unexpected(describe_source(entry) + " is not a regular file");
    if (static_cast<std::uint64_t>(before.st_size) != entry.size)
        return Unexpected(
            describe_source(entry) + " changed size since it was scanned: " + "expected " +
            std::to_string(entry.size) + " bytes, found " + std::to_string(before.st_size));
    if (auto r = fill_from(fd.get(), entry); !r) return r;
    // Same size but rewritten in place while we read would give a torn copy.
    struct stat after {};
    if (::fstat(fd.get(), &after) != 0)
        return Unexpected("cannot stat " + describe_source(entry) + ": " + errno_string(errno));
    if (!same_time(before.st_mtim, after.st_mtim) || after.st_size != before.st_size)
        return Unexpected(describe_source(entry) + " was modified while being read");
    return {};
}

Result<void> TarWriter::copy_stream(const Entry& entry) {
    if (auto r = content_->open(entry); !r) return r;
    auto filled = fill(entry.size, [this](char* p, std::size_t n) { return content_->read(p, n); });
    if (!filled) return Unexpected(filled.error());
    if (filled->got < entry.size)
        return Unexpected("the content of " + entry.path + " ended early: expected " +
                          std::to_string(entry.size) + " bytes, got " +
                          std::to_string(filled->got));
    if (filled->longer)
        return Unexpected("the content of " + entry.path + " is longer than " +
                          std::to_string(entry.size) + " bytes");
    return {};
}

Result<void> TarWriter::add(const Entry& entry) {
    if (failed_) return Unexpected("tar writer: an earlier entry failed");
    failed_ = true; // until this entry is complete
    if (auto r = check_entry(entry); !r) return r;
    if (!previous_path_.empty() && !path_less(previous_path_, entry.path))
        return Unexpected(previous_path_ == entry.path
                              ? "duplicate path in layer: " + entry.path
                              : "entry " + entry.path + " is out of order (after " +
                                    previous_path_ + ")");
    bool is_file = entry.type == Entry::Type::file;
    bool in_memory = entry.source.empty();
    std::uint64_t size = tar_content_size(entry);
    if (auto r = write_headers(entry, size); !r) return r;
    if (is_file) {
        auto r = in_memory                               ? put(entry.data.data(), entry.data.size())
                 : content_ && content_->provides(entry) ? copy_stream(entry)
                                                         : copy_source(entry);
        if (!r) return r;
    }
    if (auto r = pad(); !r) return r;
    previous_path_ = entry.path;
    failed_ = false;
    return {};
}

Result<void> TarWriter::finish() {
    if (failed_) return Unexpected("tar writer: an earlier entry failed");
    static constexpr std::array<char, 2 * block_size> end{};
    if (auto r = put(end.data(), end.size()); !r) return r;
    return flush();
}

Result<void> write_tar(std::vector<Entry> entries, std::int64_t epoch, Sink sink) {
    auto sorted = sort_entries(std::move(entries));
    if (!sorted) return Unexpected(sorted.error());
    TarWriter writer(std::move(sink), epoch);
    for (const auto& entry : *sorted)
        if (auto r = writer.add(entry); !r) return r;
    return writer.finish();
}

} // namespace factory::layer
