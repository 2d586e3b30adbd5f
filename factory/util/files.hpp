#pragma once
// Small file helpers; everything the store writes goes through AtomicFile.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"

namespace factory {

namespace fs = std::filesystem;

// Writes a file by the one safe way: a temp file beside the target, fsync, rename.
// The destructor removes the temp file unless commit() succeeded.
class AtomicFile {
  public:
    // Throws Error if the temp file can't be created.
    explicit AtomicFile(fs::path target, unsigned mode = 0644);
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile();

    int fd() const noexcept { return fd_.get(); }
    const fs::path& temp_path() const noexcept { return temp_; }
    const fs::path& target() const noexcept { return target_; }
    void write(std::string_view data); // throws Error
    // fsync + rename onto the target + fsync of the directory. Throws Error.
    void commit();

  private:
    fs::path target_;
    fs::path temp_;
    Fd fd_;
    bool committed_ = false;
};

// Prefix of every temp file we create; GC sweeps stale ones.
inline constexpr std::string_view temp_prefix = ".tmp-";

Result<std::string> read_file(const fs::path& path, std::uint64_t max_size = 64u << 20);
void write_file_atomic(const fs::path& path, std::string_view data, unsigned mode = 0644);
// Writes all of data to fd, retrying on EINTR and short writes.
Result<void> write_all(int fd, const void* data, std::size_t size);
// Reads up to size bytes; returns the count (0 at EOF).
Result<std::size_t> read_some(int fd, void* data, std::size_t size);
void fsync_dir(const fs::path& dir);
// A random-ish unique suffix for temp names (pid, thread, counter, time).
std::string unique_suffix();

// The mount points at `dir` or below it in this mount namespace (/proc/self/mountinfo), the
// deepest first, as they must be unmounted. `dir` is taken as given (absolute, no symlinks).
std::vector<fs::path> mounts_under(const fs::path& dir);

// A temporary directory removed recursively on destruction (unless keep()).
class TempDir {
  public:
    explicit TempDir(const fs::path& parent = fs::temp_directory_path(),
                     std::string_view prefix = "factory-");
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();
    const fs::path& path() const noexcept { return path_; }
    void keep() noexcept { keep_ = true; }

  private:
    fs::path path_;
    bool keep_ = false;
};

} // namespace factory
