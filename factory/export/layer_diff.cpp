#include "factory/export/layer_diff.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>

#include "factory/runtime/applier.hpp"
#include "factory/runtime/tar_reader.hpp"
#include "factory/util/sha256.hpp"

namespace factory::exporter {

namespace {

// "./a/b/" → "a/b"; "." → "". The reader has refused what no layer may hold already.
std::string entry_path(const char* raw) {
    std::string out;
    std::string_view rest(raw ? raw : "");
    while (!rest.empty()) {
        auto slash = rest.find('/');
        auto c = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (c.empty() || c == ".") continue;
        if (!out.empty()) out += '/';
        out += c;
    }
    return out;
}

FileType type_of(archive_entry* e) {
    switch (archive_entry_filetype(e)) {
    case AE_IFDIR:
        return FileType::dir;
    case AE_IFLNK:
        return FileType::symlink;
    case AE_IFCHR:
        return FileType::chardev;
    case AE_IFBLK:
        return FileType::blockdev;
    case AE_IFIFO:
        return FileType::fifo;
    default:
        return FileType::file;
    }
}

// The content's sha256, sparse holes hashed as the zeros they read as.
Result<std::string> content_sha256(runtime::TarReader& r, std::uint64_t size) {
    Sha256 hash;
    std::uint64_t pos = 0;
    static const char zeros[65536] = {};
    auto fill = [&](std::uint64_t to) {
        while (pos < to) {
            auto n = std::min<std::uint64_t>(to - pos, sizeof zeros);
            hash.update(zeros, n);
            pos += n;
        }
    };
    auto ok = r.read_data([&](std::int64_t offset, std::string_view bytes) -> Result<void> {
        fill(static_cast<std::uint64_t>(offset));
        hash.update(bytes.data(), bytes.size());
        pos += bytes.size();
        return {};
    });
    if (!ok) return Unexpected(ok.error());
    fill(size);
    return hash.hex_digest();
}

Result<FileInfo> entry_info(runtime::TarReader& r, archive_entry* e, const std::string& path,
                            const std::map<std::string, FileInfo>& so_far,
                            const runtime::ApplyLimits& limits) {
    FileInfo info;
    info.type = type_of(e);
    info.mode = archive_entry_perm(e) & 07777;
    info.uid = archive_entry_uid(e);
    info.gid = archive_entry_gid(e);
    info.mtime = archive_entry_mtime_is_set(e) ? archive_entry_mtime(e) : 0;
    auto x = runtime::for_each_xattr(
        e, path, limits.max_xattr_bytes, [&](const char* name, const void* value, size_t size) {
            info.xattrs[name] = std::string(static_cast<const char*>(value), size);
            return Result<void>{};
        });
    if (!x) return Unexpected(x.error());
    if (const char* target = archive_entry_hardlink(e)) {
        info.type = FileType::hardlink;
        info.link = entry_path(target);
        if (auto it = so_far.find(info.link); it != so_far.end()) {
            info.sha256 = it->second.sha256;
            info.size = it->second.size;
        }
        return info;
    }
    if (info.type == FileType::symlink) {
        const char* target = archive_entry_symlink(e);
        info.link = target ? target : "";
        info.size = info.link.size();
    } else if (info.type == FileType::chardev || info.type == FileType::blockdev) {
        info.major = archive_entry_rdevmajor(e);
        info.minor = archive_entry_rdevminor(e);
    } else if (info.type == FileType::file) {
        info.size = static_cast<std::uint64_t>(std::max<la_int64_t>(0, archive_entry_size(e)));
        auto sha = content_sha256(r, info.size);
        if (!sha) return Unexpected(sha.error());
        info.sha256 = *sha;
    }
    return info;
}

} // namespace

std::map<std::string, FileInfo> read_layer_entries(const std::filesystem::path& blob,
                                                   const oci::Descriptor& layer) {
    runtime::ApplyLimits limits;
    auto tar = runtime::TarReader::open(blob, runtime::compression_of_media_type(layer.media_type),
                                        limits.stream);
    if (!tar) throw Error(tar.error());
    auto& r = **tar;
    std::map<std::string, FileInfo> out;
    for (;;) {
        auto e = r.next();
        if (!e) throw Error(e.error());
        if (!*e) break;
        if (r.entries() > limits.max_entries)
            throw Error(r.prefix() + "more than " + std::to_string(limits.max_entries) +
                        " entries");
        auto path = entry_path(archive_entry_pathname(*e));
        auto info = entry_info(r, *e, path, out, limits);
        if (!info)
            throw Error(r.stream_error().empty() ? r.prefix() + info.error()
                                                 : r.prefix() + r.stream_error());
        out[path] = std::move(*info);
    }
    if (auto done = r.finish(); !done) throw Error(done.error());
    if (r.stream().digest() != layer.digest)
        throw Error(r.prefix() + "the blob hashes to " + r.stream().digest());
    return out;
}

std::vector<FileChange> diff_layer_entries(const std::map<std::string, FileInfo>& a,
                                           const std::map<std::string, FileInfo>& b) {
    std::vector<FileChange> out;
    auto ia = a.begin();
    auto ib = b.begin();
    while (ia != a.end() || ib != b.end()) {
        FileChange c;
        if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
            c.path = ia->first;
            c.kind = ChangeKind::removed;
            c.a = (ia++)->second;
        } else if (ia == a.end() || ib->first < ia->first) {
            c.path = ib->first;
            c.kind = ChangeKind::added;
            c.b = (ib++)->second;
        } else {
            c.path = ib->first;
            c.what = file_differences(ia->second, ib->second);
            if (ia->second.type == FileType::hardlink && ib->second.type == FileType::hardlink &&
                ia->second.link != ib->second.link)
                c.what.push_back("link");
            if (ia->second.mtime != ib->second.mtime) c.what.push_back("mtime");
            c.a = (ia++)->second;
            c.b = (ib++)->second;
            if (c.what.empty()) continue;
        }
        out.push_back(std::move(c));
    }
    return out;
}

} // namespace factory::exporter
