#pragma once
// A deterministic PAX (POSIX.1-2001) tar writer: the same entries and epoch give the same bytes
// on any machine. It writes what Go's archive/tar (the writer behind containerd and BuildKit)
// writes for the same headers, so the format choices below are those of a reference writer:
//
//  - one 512-byte ustar header per entry, magic "ustar\0" version "00"; numeric fields are
//    zero-padded octal ending in NUL, the checksum "%06o\0 "; uname/gname empty;
//    devmajor/devminor "0000000"; typeflags '0' file, '5' directory, '2' symlink, '1' hardlink
//  - directory names end in "/"; mtime is the epoch for every entry; no atime/ctime
//  - names up to 100 bytes go in `name`; longer ASCII names that split at a '/' into a
//    prefix of at most 155 and a name of at most 100 bytes use the ustar `prefix` field
//  - a PAX extended header (typeflag 'x') precedes an entry only when ustar can't hold it:
//    a path that neither fits nor splits or isn't ASCII ("path"), a link target over 100
//    bytes or not ASCII ("linkpath"), size >= 8 GiB ("size"), uid/gid >= 2^21 ("uid",
//    "gid"), an epoch outside 0..8^11-1 ("mtime"), any xattr ("SCHILY.xattr.NAME").
//    Records are sorted by keyword. The ustar fields then carry the ASCII bytes of the name
//    (truncated) and 0 for numbers that don't fit.
//  - the extended header's own name is "<dir>/PaxHeaders.0/<base>" (Go's scheme) with
//    non-ASCII bytes dropped, cut to 100 bytes; its mode, uid, gid and mtime are 0
//  - the archive ends with two zero blocks and no further padding.

#include "factory/layer/entry.hpp"
#include "factory/layer/sink.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace factory::layer {

class ContentSource;

class TarWriter {
  public:
    // `epoch` is the mtime of every entry, in seconds since 1970.
    TarWriter(Sink sink, std::int64_t epoch);
    TarWriter(const TarWriter&) = delete;
    TarWriter& operator=(const TarWriter&) = delete;
    ~TarWriter();

    // Writes one entry and its content. Entries must come in canonical order (path_less),
    // each path once; hardlink targets are not checked here (sort_entries does). File content
    // is streamed from `source` in chunks; the file must be a regular file whose size is
    // still entry.size and doesn't change while it is read. On error the stream written so
    // far is unusable and the writer refuses further entries.
    Result<void> add(const Entry& entry);
    // Writes the end-of-archive blocks and flushes. Call once, after the last add().
    Result<void> finish();
    // File entries that `content` provides take their bytes from it, not from their source
    // (content_source.hpp); null (the default): every source is opened. Not owned.
    void set_content(ContentSource* content) { content_ = content; }
    // Hands every byte written so far to the sink (between entries: the stream then ends on
    // an entry boundary). The bytes of the stream don't depend on when it is called.
    Result<void> flush();

  private:
    Result<void> put(const void* data, std::size_t size);
    Result<void> pad();
    Result<void> write_headers(const Entry& entry, std::uint64_t size);
    Result<void> copy_source(const Entry& entry);
    Result<void> fill_from(int fd, const Entry& entry);
    Result<void> copy_stream(const Entry& entry);
    // What fill() read: `got` bytes (fewer than asked when the content ended early), and
    // whether more followed.
    struct Filled {
        std::uint64_t got = 0;
        bool longer = false;
    };
    // Reads `size` bytes with read(char*, n) straight into the output buffer, then probes for
    // one more. Errors are read()'s and the sink's.
    template <class Read> Result<Filled> fill(std::uint64_t size, Read read);

    Sink sink_;
    std::int64_t epoch_;
    std::vector<char> buffer_; // output gathered into large writes; content is read into it
    std::size_t used_ = 0;
    std::uint64_t offset_ = 0; // bytes produced so far, for 512-byte padding
    std::string previous_path_;
    bool failed_ = false;
    ContentSource* content_ = nullptr;
};

// The header bytes add() writes before an entry's content: the PAX extended header (padded)
// when there is one, then the ustar header; a multiple of 512 bytes. `size` is the content
// size (tar_content_size). An error for an extended header over 1 MiB.
Result<std::string> tar_headers(const Entry& entry, std::uint64_t size, std::int64_t epoch);
// The content bytes add() writes for an entry: a file's size (or its data's), 0 otherwise.
std::uint64_t tar_content_size(const Entry& entry);

// Checks and sorts `entries` (sort_entries) and writes the whole archive to `sink`.
Result<void> write_tar(std::vector<Entry> entries, std::int64_t epoch, Sink sink);

} // namespace factory::layer
