#include "factory/runtime/tar_reader.hpp"

#include "factory/util/archive_loader.hpp"

#include <algorithm>
#include <cerrno>

namespace factory::runtime {

la_ssize_t TarReader::read_callback(archive* a, void* client, const void** buffer) {
    auto* self = static_cast<TarReader*>(client);
    auto chunk = self->stream_->next();
    if (!chunk) {
        self->stream_error_ = chunk.error();
        archive_set_error(a, EIO, "%s", self->stream_error_.c_str());
        return -1;
    }
    *buffer = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
}

Result<std::unique_ptr<TarReader>> TarReader::open(const std::filesystem::path& blob,
                                                   std::optional<layer::Compression> compression,
                                                   const StreamLimits& limits,
                                                   const std::string& name) {
    auto stream = LayerStream::open(blob, compression, limits);
    if (!stream) return Unexpected(stream.error());
    std::unique_ptr<TarReader> r(new TarReader());
    r->stream_ = std::move(*stream);
    r->prefix_ = (name.empty() ? "layer " + blob.string() : name) + ": ";
    r->limits_ = limits;
    r->a_ = archive_read_new();
    if (!r->a_) return Unexpected(archive_null_error());
    archive_read_support_format_tar(r->a_);
    archive_read_support_filter_none(r->a_);
    if (archive_read_open(r->a_, r.get(), nullptr, read_callback, nullptr) != ARCHIVE_OK)
        return Unexpected(r->error(""));
    return r;
}

TarReader::~TarReader() {
    if (a_) archive_read_free(a_);
}

std::string TarReader::error(const std::string& what) {
    if (!stream_error_.empty()) return stream_error_;
    // libarchive sets no message for some failures (a header it gives up on): never a null.
    const char* why = archive_error_string(a_);
    return prefix_ + what + (why ? why : "not a valid tar header");
}

Result<archive_entry*> TarReader::next() {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a_, &e);
    if (r == ARCHIVE_EOF) return static_cast<archive_entry*>(nullptr);
    // ARCHIVE_WARN: e.g. a UTF-8 name this locale can't convert; the raw name is kept.
    // ARCHIVE_RETRY: a damaged header libarchive would skip over: a corrupt layer.
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return Unexpected(error("entry " + std::to_string(entries_ + 1) + ": "));
    ++entries_;
    // A size the rest of the stream can't hold is refused before a byte of it is read.
    name_ = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    while (name_.starts_with("./") || name_.starts_with("/"))
        name_.erase(0, name_[0] == '.' ? 2 : 1);
    if (archive_entry_size_is_set(e)) {
        auto size = archive_entry_size(e);
        std::uint64_t used = stream_->uncompressed_bytes();
        std::uint64_t cap = limits_.max_bytes;
        if (size < 0 || static_cast<std::uint64_t>(size) > cap - std::min(cap, used))
            return Unexpected(prefix_ + "entry \"" + name_ + "\": size " + std::to_string(size) +
                              " is over the cap of " + std::to_string(cap) + " bytes");
    }
    return e;
}

Result<void>
TarReader::read_data(const std::function<Result<void>(std::int64_t, std::string_view)>& fn) {
    for (;;) {
        const void* buf = nullptr;
        std::size_t len = 0;
        la_int64_t offset = 0;
        int r = archive_read_data_block(a_, &buf, &len, &offset);
        if (r == ARCHIVE_EOF) return {};
        if (r < ARCHIVE_WARN) return Unexpected(error("entry \"" + name_ + "\": "));
        if (auto ok = fn(offset, {static_cast<const char*>(buf), len}); !ok) return ok;
    }
}

Result<void> TarReader::finish() {
    return stream_->drain();
}

Result<void> for_each_xattr(
    archive_entry* e, const std::string& path, std::uint64_t max_bytes,
    const std::function<Result<void>(const char* name, const void* value, size_t size)>& fn) {
    std::uint64_t total = 0;
    archive_entry_xattr_reset(e);
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (!name) continue;
        total += std::string_view(name).size() + size;
        if (total > max_bytes)
            return Unexpected("entry \"" + path + "\": extended attributes over " +
                              std::to_string(max_bytes) + " bytes");
        if (auto r = fn(name, value, size); !r) return r;
    }
    return {};
}

} // namespace factory::runtime
