#include "factory/sources/archive.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <set>

#include "factory/runtime/tar_reader.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"
#include "factory/util/archive_loader.hpp"

namespace factory::sources {

namespace {

using DataFn = std::function<Result<void>(std::int64_t, std::string_view)>;

// A zip, read seekable by libarchive (a zip's modes live in its central directory, at its end;
// libarchive inflates each entry, and the caller caps the total). The same three calls as
// runtime::TarReader, which reads every tar, so one loop takes either.
class ZipReader {
  public:
    static Result<std::unique_ptr<ZipReader>> open(const fs::path& path, std::string name) {
        std::unique_ptr<ZipReader> r(new ZipReader());
        r->prefix_ = std::move(name) + ": ";
        r->a_ = archive_read_new();
        if (!r->a_) return Unexpected(archive_null_error());
        archive_read_support_format_zip_seekable(r->a_);
        if (archive_read_open_filename(r->a_, path.c_str(), 1 << 16) != ARCHIVE_OK)
            return Unexpected(r->error(""));
        return r;
    }
    ~ZipReader() {
        if (a_) archive_read_free(a_);
    }
    ZipReader(const ZipReader&) = delete;
    ZipReader& operator=(const ZipReader&) = delete;

    Result<archive_entry*> next() {
        archive_entry* e = nullptr;
        int r = archive_read_next_header(a_, &e);
        if (r == ARCHIVE_EOF) return static_cast<archive_entry*>(nullptr);
        if (r < ARCHIVE_WARN) return Unexpected(error(""));
        name_ = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
        return e;
    }
    Result<void> read_data(const DataFn& fn) {
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
    Result<void> finish() { return {}; }

  private:
    ZipReader() = default;
    std::string error(const std::string& what) {
        const char* why = archive_error_string(a_);
        return prefix_ + what + (why ? why : "not a valid zip");
    }
    archive* a_ = nullptr;
    std::string prefix_;
    std::string name_; // the current entry's
};

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

// The entry's content into a new file `target` (sparse regions as the zeros they stand for),
// counting it into *total, which may not pass max_total. The reader's errors name the archive
// and the entry already; this function's own begin with `where` ("NAME: entry "PATH": ").
template <typename Reader>
Result<void> copy_data(Reader& reader, const fs::path& target, std::uint64_t* size,
                       std::uint64_t* total, std::uint64_t max_total, const std::string& where) {
    Fd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd)
        return Unexpected(where + "cannot create " + target.string() + ": " + errno_string(errno));
    std::uint64_t written = 0;
    auto r = reader.read_data([&](std::int64_t offset, std::string_view bytes) -> Result<void> {
        if (static_cast<std::uint64_t>(offset) > written) {
            std::string zeros(static_cast<std::size_t>(offset) - written, '\0');
            if (auto w = write_all(fd.get(), zeros.data(), zeros.size()); !w)
                return Unexpected(where + w.error());
            written = static_cast<std::uint64_t>(offset);
        }
        if (auto w = write_all(fd.get(), bytes.data(), bytes.size()); !w)
            return Unexpected(where + w.error());
        written += bytes.size();
        *total += bytes.size();
        if (*total > max_total)
            return Unexpected(where + "more than " + std::to_string(max_total) +
                              " bytes of content");
        return {};
    });
    if (!r) return r;
    *size = written;
    return {};
}

// "PK\3\4": a zip's first local header.
bool is_zip(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    char magic[4] = {};
    return fd && ::read(fd.get(), magic, 4) == 4 && std::string_view(magic, 4) == "PK\3\4";
}

// The loop over either reader; `where` prefixes this function's own errors with the archive's
// name (the readers' errors carry it already).
template <typename Reader>
Result<std::vector<layer::Entry>>
entries_of(Reader& reader, const std::string& dest, const fs::path& content_dir,
           const ArchiveLimits& limits,
           const std::function<std::string(const std::string&)>& where) {
    std::uint64_t total = 0;

    std::map<std::string, layer::Entry> by_path; // later entries replace earlier ones
    std::uint64_t count = 0;
    for (;;) {
        auto next = reader.next();
        if (!next) return Unexpected(next.error());
        archive_entry* e = *next;
        if (!e) break;
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
            if (auto r = copy_data(reader, content, &size, &total, limits.stream.max_bytes,
                                   where("entry " + quote(raw) + ": "));
                !r)
                return Unexpected(r.error());
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
    if (auto r = reader.finish(); !r) return Unexpected(r.error());

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
        // A path that became a parent of later entries must be a directory. A symlink is not
        // one: what is under it would land wherever it points (lnk -> /etc, then lnk/passwd).
        if (dirs.contains(p) && e.type == layer::Entry::Type::symlink) {
            // The first entry under it (dirs holds p for one).
            const auto& child = by_path.lower_bound(p + "/")->first;
            return Unexpected(where("entry " + quote(child) + " goes through the symlink " +
                                    quote(p) + " (→ " + e.link +
                                    "), and extracting follows no symlink"));
        }
        if (dirs.contains(p) && e.type != layer::Entry::Type::dir)
            return Unexpected(where("entry " + quote(p) + " is both a file and a directory"));
        out.push_back(std::move(e));
    }
    return out;
}

} // namespace

Result<std::vector<layer::Entry>> archive_entries(const fs::path& path, const std::string& dest_in,
                                                  const fs::path& content_dir,
                                                  const ArchiveLimits& limits,
                                                  const std::string& name_in) {
    std::string dest = normalize(dest_in);
    if (!dest.empty())
        if (auto r = layer::check_path(dest); !r) return Unexpected("dest: " + r.error());
    std::string name = name_in.empty() ? path.filename().string() : name_in;
    auto where = [&](const std::string& msg) { return name + ": " + msg; };
    if (is_zip(path)) {
        auto zip = ZipReader::open(path, name);
        if (!zip) return Unexpected(zip.error());
        return entries_of(**zip, dest, content_dir, limits, where);
    }
    auto tar = runtime::TarReader::open(path, std::nullopt, limits.stream, name);
    if (!tar) return Unexpected(tar.error());
    return entries_of(**tar, dest, content_dir, limits, where);
}

} // namespace factory::sources
