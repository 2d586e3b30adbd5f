#pragma once
// A deterministic tar writer for image archives (oci-archive, docker-archive): PAX (ustar headers
// unless an entry needs more), mtime 0, uid/gid 0 with empty user/group names, files 0644,
// directories 0755, entries in the order they are added (callers add them sorted). The output
// depends only on the entries: no time, host, user or umask leaks in. Uses libarchive's write
// side on a caller's fd (never archive_write_disk).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct archive;

namespace factory::exporter {

class TarWriter {
  public:
    // Writes to fd (not closed here). Throws Error.
    explicit TarWriter(int fd);
    TarWriter(const TarWriter&) = delete;
    TarWriter& operator=(const TarWriter&) = delete;
    ~TarWriter();

    // name ends with '/'.
    void add_directory(const std::string& name);
    void add_file(const std::string& name, std::string_view content);
    // Streams exactly size bytes from fd. Throws Error if fd has fewer.
    void add_file_from_fd(const std::string& name, int fd, std::uint64_t size,
                          std::string_view expected_sha256 = {});
    // Writes the end-of-archive records. Throws Error.
    void finish();

  private:
    void header(const std::string& name, bool directory, std::uint64_t size);
    [[noreturn]] void fail(const std::string& what);

    struct Free {
        void operator()(archive* a) const noexcept;
    };
    std::unique_ptr<archive, Free> a_;
};

} // namespace factory::exporter
