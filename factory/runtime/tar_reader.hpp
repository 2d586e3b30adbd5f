#pragma once
// The one reader of layer blobs: a LayerStream (decompression in-process, both digests, the
// caps on uncompressed size and compression ratio) under libarchive's tar reader (its format
// parser only: no filter, no write-to-disk). The applier (snapshots, export's rootfs) and the
// builder's Tree read every layer through it, so a decompression bomb or a corrupt stream is
// refused the same way, with the same words, wherever a layer is read.

#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "factory/runtime/layer_stream.hpp"
#include "factory/util/error.hpp"

namespace factory::runtime {

class TarReader {
  public:
    // Opens the blob (compression nullopt: sniffed). Errors begin with `name` and ": " (by
    // default "layer BLOB").
    static Result<std::unique_ptr<TarReader>> open(const std::filesystem::path& blob,
                                                   std::optional<layer::Compression> compression,
                                                   const StreamLimits& limits,
                                                   const std::string& name = {});
    ~TarReader();
    TarReader(const TarReader&) = delete;
    TarReader& operator=(const TarReader&) = delete;

    // The next entry's header, or nullptr at the end of the archive. Errors: "layer BLOB: entry
    // N: <why>", "layer BLOB: entry "NAME": size S is over the cap of C bytes", or the stream's
    // own error (a cap, corrupt compressed data) as it said it.
    Result<archive_entry*> next();
    // The current entry's data in blocks: fn(offset, bytes) for each (sparse files have gaps).
    Result<void> read_data(const std::function<Result<void>(std::int64_t, std::string_view)>& fn);
    // After the last entry: reads the rest of the stream (the tar's padding), so that the
    // digests are complete.
    Result<void> finish();

    // libarchive's handle, for callers that read the data themselves (archive_read_data_*);
    // turn its failures into words with error().
    archive* handle() noexcept { return a_; }
    std::string error(const std::string& what);
    // The stream's error when the last failure was the stream's (a cap, corrupt compressed
    // data), else "".
    const std::string& stream_error() const noexcept { return stream_error_; }
    LayerStream& stream() noexcept { return *stream_; }
    const std::string& prefix() const noexcept { return prefix_; } // "NAME: "
    std::uint64_t entries() const noexcept { return entries_; }

  private:
    TarReader() = default;
    static la_ssize_t read_callback(archive* a, void* client, const void** buffer);
    std::unique_ptr<LayerStream> stream_;
    archive* a_ = nullptr;
    std::string prefix_;
    StreamLimits limits_;
    std::string name_;         // the current entry's name, without a leading "./" or "/"
    std::string stream_error_; // the stream's error, which libarchive would reduce to its words
    std::uint64_t entries_ = 0;
};

// Calls fn(name, value) for each extended attribute of the entry, in its order, after checking
// that the names and values so far stay within max_bytes: past it, the error
// `entry "PATH": extended attributes over N bytes`, the words of every layer reader.
Result<void> for_each_xattr(
    archive_entry* e, const std::string& path, std::uint64_t max_bytes,
    const std::function<Result<void>(const char* name, const void* value, size_t size)>& fn);

} // namespace factory::runtime
