#include "factory/sources/archive.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>

#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

namespace factory::sources {

namespace {

struct ArchiveFree {
    void operator()(archive* a) const noexcept { archive_read_free(a); }
};

struct ReadContext {
    runtime::LayerStream* stream;
    std::string error;
};

la_ssize_t read_callback(archive* a, void* client, const void** buffer) {
    auto* ctx = static_cast<ReadContext*>(client);
    auto chunk = ctx->stream->next();
    if (!chunk) {
        ctx->error = chunk.error();
        archive_set_error(a, EIO, "%s", ctx->error.c_str());
        return -1;
    }
    *buffer = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
}

std::string quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// "./a/b/", "/a//b" → "a/b"; "" for the archive's root.
std::string normalize(std::string_view raw) {
    std::string out;
    std::size_t i = 0;
    while (i <= raw.size()) {
        auto j = raw.find('/', i);
        if (j == std::string_view::npos) j = raw.size();
        auto part = raw.substr(i, j - i);
        if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + std::string(part);
        i = j + 1;
    }
    return out;
}

std::string under(const std::string& dest, const std::string& path) {
    if (dest.empty()) return path;
    return path.empty() ? dest : dest + "/" + path;
}

void add_parents(const std::string& path, std::set<std::string>& dirs) {
    for (auto slash = path.rfind('/'); slash != std::string::npos;
         slash = slash == 0 ? std::string::npos : path.rfind('/', slash - 1))
        dirs.insert(path.substr(0, slash));
}

Result<void> copy_data(archive* a, const fs::path& target, std::uint64_t* size,
                       std::uint64_t* total, std::uint64_t max_total) {
    Fd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) return Unexpected("cannot create " + target.string() + ": " + errno_string(errno));
    const void* buf;
    std::size_t len;
    la_int64_t offset;
    std::uint64_t written = 0;
    for (;;) {
        int rc = archive_read_data_block(a, &buf, &len, &offset);
        if (rc == ARCHIVE_EOF) break;
        if (rc < ARCHIVE_WARN) return Unexpected(archive_error_string(a));
        // Sparse regions come as gaps in the offsets: write the zeros.
        if (static_cast<std::uint64_t>(offset) > written) {
            std::string zeros(static_cast<std::size_t>(offset) - written, '\0');
            if (auto r = write_all(fd.get(), zeros.data(), zeros.size()); !r) return r;
            written = static_cast<std::uint64_t>(offset);
        }
        if (auto r = write_all(fd.get(), buf, len); !r) return r;
        written += len;
        *total += len;
        if (*total > max_total)
            return Unexpected("more than " + std::to_string(max_total) + " bytes of content");
    }
    *size = written;
    return {};
}

// "PK\3\4": a zip's first local header.
bool is_zip(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    char magic[4] = {};
    return fd && ::read(fd.get(), magic, 4) == 4 && std::string_view(magic, 4) == "PK\3\4";
}

} // namespace

Result<std::vector<layer::Entry>> archive_entries(const fs::path& path, const std::string& dest_in,
                                                  const fs::path& content_dir,
                                                  const ArchiveLimits& limits) {
    std::string dest = normalize(dest_in);
    if (!dest.empty())
        if (auto r = layer::check_path(dest); !r) return Unexpected("dest: " + r.error());
    auto where = [&](const std::string& msg) { return path.filename().string() + ": " + msg; };
    std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
    ReadContext ctx{nullptr, {}};
    std::unique_ptr<runtime::LayerStream> stream;
    if (is_zip(path)) {
        // A zip's modes live in its central directory, at the end: read it seekable (libarchive
        // inflates each entry; copy_data caps the total).
        archive_read_support_format_zip_seekable(a.get());
        if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
            return Unexpected(where(archive_error_string(a.get())));
    } else {
        auto opened = runtime::LayerStream::open(path, std::nullopt, limits.stream);
        if (!opened) return Unexpected(opened.error());
        stream = std::move(*opened);
        ctx.stream = stream.get();
        archive_read_support_format_tar(a.get());
        archive_read_support_format_gnutar(a.get());
        archive_read_support_filter_none(a.get());
        if (archive_read_open(a.get(), &ctx, nullptr, read_callback, nullptr) != ARCHIVE_OK)
            return Unexpected(where(ctx.error.empty() ? archive_error_string(a.get()) : ctx.error));
    }
    std::uint64_t total = 0;

    std::map<std::string, layer::Entry> by_path; // later entries replace earlier ones
    std::uint64_t count = 0;
    for (;;) {
        archive_entry* e = nullptr;
        int rc = archive_read_next_header(a.get(), &e);
        if (rc == ARCHIVE_EOF) break;
        if (rc < ARCHIVE_WARN)
            return Unexpected(where(ctx.error.empty() ? archive_error_string(a.get()) : ctx.error));
        if (++count > limits.max_entries)
            return Unexpected(
                where("more than " + std::to_string(limits.max_entries) + " entries"));
        const char* raw = archive_entry_pathname(e);
        if (!raw) return Unexpected(where("an entry without a path"));
        std::string rel = normalize(raw);
        if (rel.empty()) continue; // "./": the root's own metadata is not taken
        std::string full = under(dest, rel);
        if (auto r = layer::check_path(full); !r)
            return Unexpected(where("entry " + quote(raw) + ": " + r.error()));
        layer::Entry entry;
        entry.path = full;
        entry.mode = archive_entry_perm(e) & 0777;
        if (const char* hl = archive_entry_hardlink(e)) {
            std::string target = normalize(hl);
            if (auto r = layer::check_path(under(dest, target)); !r || target.empty())
                return Unexpected(where("entry " + quote(raw) + ": hardlink target " + quote(hl) +
                                        (r ? "" : ": " + r.error())));
            auto t = by_path.find(under(dest, target));
            if (t == by_path.end() || t->second.type != layer::Entry::Type::file)
                return Unexpected(where("entry " + quote(raw) + ": hardlink to " + quote(hl) +
                                        ", which is not an earlier file of the archive"));
            entry.type = layer::Entry::Type::hardlink;
            entry.link = t->first;
            by_path.insert_or_assign(full, std::move(entry));
            continue;
        }
        switch (archive_entry_filetype(e)) {
        case AE_IFREG: {
            fs::path content = content_dir / std::to_string(count);
            std::uint64_t size = 0;
            if (auto r = copy_data(a.get(), content, &size, &total, limits.stream.max_bytes); !r)
                return Unexpected(where("entry " + quote(raw) + ": " + r.error()));
            entry.source = content.string();
            entry.size = size;
            break;
        }
        case AE_IFDIR:
            entry.type = layer::Entry::Type::dir;
            break;
        case AE_IFLNK:
            entry.type = layer::Entry::Type::symlink;
            entry.mode = 0777;
            entry.link = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
            if (entry.link.empty())
                return Unexpected(where("entry " + quote(raw) + ": a symlink without a target"));
            break;
        default:
            return Unexpected(
                where("entry " + quote(raw) + ": devices, FIFOs and sockets can't be extracted"));
        }
        by_path.insert_or_assign(full, std::move(entry));
    }
    if (!ctx.error.empty()) return Unexpected(where(ctx.error));
    if (stream)
        if (auto r = stream->drain(); !r) return Unexpected(r.error());

    std::set<std::string> dirs;
    for (const auto& [p, e] : by_path)
        add_parents(p, dirs);
    if (!dest.empty()) {
        dirs.insert(dest);
        add_parents(dest, dirs);
    }
    std::vector<layer::Entry> out;
    for (const auto& d : dirs)
        if (!by_path.contains(d)) {
            layer::Entry e;
            e.path = d;
            e.type = layer::Entry::Type::dir;
            e.mode = 0755;
            out.push_back(std::move(e));
        }
    for (auto& [p, e] : by_path) {
        // A path that became a parent of later entries must be a directory.
        if (dirs.contains(p) && e.type != layer::Entry::Type::dir)
            return Unexpected(where("entry " + quote(p) + " is both a file and a directory"));
        out.push_back(std::move(e));
    }
    return out;
}

} // namespace factory::sources
