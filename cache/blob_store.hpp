#pragma once
// The content-addressed blob directory: blobs/sha256/<hex>, each file named by the sha256 of its
// content. It knows sha256 and files, nothing of OCI JSON (docs/oci.md "Blob store").
//
// Every hex string is validated ([a-f0-9]{64}) before it is used in a path. Blobs are published
// by rename (or link) only after their content is complete and fsynced, so a reader never sees a
// partial blob under its final name. Blobs get mode 0644 (not 0444): see docs/oci.md.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/sha256.hpp"

namespace factory::cache {

namespace fs = std::filesystem;

// True if s is exactly 64 lower-case hex digits.
bool is_sha256_hex(std::string_view s) noexcept;

// How add_file() brings a file into the store.
enum class Transfer {
    link_or_copy, // hard link when on the same file system, else copy (verifying while copying)
    copy,         // always copy (verifying while copying)
};

class BlobStore {
  public:
    static constexpr unsigned blob_mode = 0644;

    // blobs_sha256_dir: where blobs live. tmp_dir: where Writer stages its temp files; it must be
    // on the same file system as blobs_sha256_dir (rename). Nothing is created or checked here.
    BlobStore(fs::path blobs_sha256_dir, fs::path tmp_dir);

    const fs::path& dir() const noexcept { return dir_; }
    const fs::path& tmp_dir() const noexcept { return tmp_; }

    // True if a regular file exists under that name. False for an invalid hex.
    bool has(std::string_view hex) const;
    // The blob's path. Throws Error if hex is not 64 lower-case hex digits.
    fs::path path(std::string_view hex) const;

    // Reads a whole blob (at most max_size bytes) and checks that it hashes to hex. Errors name the
    // path: "<path>: content does not match its digest (got sha256:<actual>)".
    Result<std::string> read(std::string_view hex, std::uint64_t max_size) const;
    // Like read(), but the blob must be exactly `size` bytes (checked before reading).
    Result<std::string> read_exact(std::string_view hex, std::uint64_t size) const;
    // Opens the blob for streaming (O_NOFOLLOW, regular file). Does not verify the content.
    Result<Fd> open(std::string_view hex) const;
    // The blob's size from stat.
    Result<std::uint64_t> size(std::string_view hex) const;

    // Stores bytes (AtomicFile); returns their hex. A no-op if present. Throws Error.
    std::string put(std::string_view bytes);

    // Streams a blob of not-yet-known digest into a temp file in tmp_dir, hashing as it goes.
    // The destructor removes the temp file unless a commit succeeded.
    class Writer {
      public:
        Writer(Writer&&) noexcept;
        Writer& operator=(Writer&&) = delete;
        ~Writer();

        void write(const void* data, std::size_t size); // throws Error
        void write(std::string_view data) { write(data.data(), data.size()); }
        // The temp file's descriptor, for callers that write by other means (copy_file_range…).
        // Bytes written through it bypass the streaming hash, so commit() then re-reads the file.
        int fd();
        std::uint64_t size() const noexcept { return size_; }
        const fs::path& temp_path() const noexcept { return temp_; }

        // fsync, then rename into place (or drop the temp if the blob exists); returns the hex.
        // Throws Error.
        std::string commit();
        // Publishes only if the content hashes to expected_hex (and has expected_size bytes, when
        // given); otherwise removes the temp and returns an error naming both digests.
        Result<std::string> commit_verified(std::string_view expected_hex,
                                            std::optional<std::uint64_t> expected_size = {});

      private:
        friend class BlobStore;
        Writer(BlobStore& store, fs::path temp, Fd fd);
        std::string finish_hash();
        std::string publish(const std::string& hex);

        BlobStore* store_;
        fs::path temp_;
        Fd fd_;
        Sha256 hash_;
        std::uint64_t size_ = 0;
        bool raw_fd_used_ = false;
        bool done_ = false;
    };
    // Throws Error if the temp file can't be created.
    Writer writer();

    // Adopts a complete temp file (same file system) whose sha256 the caller computed: fsync,
    // chmod 0644, rename into place, or remove it if the blob exists. Throws Error.
    void commit_temp(const fs::path& temp, std::string_view hex);

    // Brings `file`, which the caller says holds blob hex of `size` bytes, into the store.
    // link_or_copy hard-links when it can (checking the size only: the source is trusted to be a
    // verified store blob); a copy is always hashed and published only if it matches.
    Result<void> add_file(const fs::path& file, std::string_view hex, std::uint64_t size,
                          Transfer how = Transfer::link_or_copy);

    // Re-hashes a stored blob. On mismatch: "blob sha256:<hex> is corrupt: content hashes to
    // sha256:<actual>".
    Result<void> verify(std::string_view hex) const;

  private:
    Result<std::string> read_checked(std::string_view hex, std::uint64_t max_size,
                                     std::optional<std::uint64_t> exact) const;
    Result<void> copy_in(const fs::path& file, std::string_view hex, std::uint64_t size);

    fs::path dir_;
    fs::path tmp_;
};

} // namespace factory::cache
