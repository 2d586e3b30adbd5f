#include "factory/runtime/applier.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <unordered_set>
#include <vector>

#include "factory/oci/media_types.hpp"
#include "factory/runtime/rootless.hpp"
#include "factory/runtime/tar_reader.hpp"

namespace factory::runtime {

namespace {

std::string quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// xattrs that never reach the disk: overlayfs's own (a lower directory would obey them:
// redirects, opaque markers, metacopy), in both the trusted and the unprivileged namespace.
bool dropped_xattr(std::string_view name) {
    return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

const char* type_word(mode_t type) {
    switch (type) {
    case AE_IFREG:
        return "file";
    case AE_IFDIR:
        return "directory";
    case AE_IFLNK:
        return "symlink";
    case AE_IFCHR:
        return "character device";
    case AE_IFBLK:
        return "block device";
    case AE_IFIFO:
        return "fifo";
    case AE_IFSOCK:
        return "socket";
    }
    return "entry of unknown type";
}

class Applier {
  public:
    Applier(int root, const ApplyOptions& o, LayerStream& stream)
        : root_(root), o_(o), stream_(stream) {
        bool root_user = ::geteuid() == 0;
        chown_ = o.owners == Owners::preserve || (o.owners == Owners::automatic && root_user);
        mknod_ = root_user;
        opaque_xattr_ = overlay_xattr(o.overlay_xattrs, "opaque");
    }

    Result<void> entry(archive* a, archive_entry* e);
    Result<void> finish();
    ApplyStats stats;

  private:
    using SharedFd = std::shared_ptr<Fd>;
    struct Times {
        std::string path;
        timespec ts[2];
    };

    Result<std::string> clean(const char* raw) const;
    Result<SharedFd> parent_dir(const std::string& parent, bool create, int* err = nullptr);
    void invalidate() { cached_.reset(); }
    // Records path and its ancestors (implied parents included) as this layer's.
    void mark_written(const std::string& path) {
        for (std::string p = path; !p.empty() && written_.insert(p).second;) {
            auto slash = p.rfind('/');
            p.erase(slash == std::string::npos ? 0 : slash);
        }
    }
    Result<bool> make_room(int pfd, const std::string& name, bool want_dir, bool* merge);
    Result<void> set_meta(int fd, archive_entry* e, const std::string& path);
    Result<void> set_owner_at(int pfd, const std::string& name, archive_entry* e);
    Result<void> set_xattrs(archive_entry* e, const std::string& path,
                            const std::function<int(const char*, const void*, size_t)>& set);
    void get_times(archive_entry* e, timespec ts[2]) const;

    Result<void> root_entry(archive_entry* e, const char* hardlink);
    Result<void> whiteout(const std::string& parent, const std::string& name);
    Result<void> opaque_rootfs(const std::string& dir);
    Result<void> opaque_overlay(const std::string& dir);
    Result<void> clear_lower(const std::string& dir);
    Result<void> regular(archive* a, archive_entry* e, int pfd, const std::string& name,
                         const std::string& path);
    Result<void> directory(archive_entry* e, int pfd, const std::string& name,
                           const std::string& path);
    Result<void> symlink(archive_entry* e, int pfd, const std::string& name,
                         const std::string& path);
    Result<void> hardlink(archive_entry* e, const char* target, int pfd, const std::string& name,
                          const std::string& path);
    Result<void> special(archive_entry* e, mode_t type, int pfd, const std::string& name,
                         const std::string& path);

    int root_;
    const ApplyOptions& o_;
    LayerStream& stream_;
    bool chown_ = false, mknod_ = false;
    std::string opaque_xattr_; // trusted.overlay.opaque, or user.overlay.opaque (rootless)
    bool overlay() const { return o_.mode == ApplyMode::overlay; }
    // Paths this layer created or merged (rootfs mode): whiteouts and opaque markers hide only
    // what lower layers put there (image-spec layer.md "Whiteouts").
    std::unordered_set<std::string> written_;
    // Whiteout devices this layer made (overlay mode): a directory replacing one is opaque.
    std::unordered_set<std::string> whiteout_devs_;
    std::vector<Times> dir_times_;
    // The last parent directory resolved: tar lists siblings together, so most entries reuse
    // it. Dropped whenever something is removed (a directory on its path may be gone).
    std::string cached_path_;
    SharedFd cached_;
};

Result<std::string> Applier::clean(const char* raw) const {
    if (!raw) return Unexpected("an entry has no name");
    std::string out;
    std::uint64_t depth = 0;
    for (auto c : split_path(raw)) {
        if (c == ".") continue;
        if (c == "..") return Unexpected("entry " + quote(raw) + ": '..' in the path");
        if (++depth > o_.limits.max_depth)
            return Unexpected("entry " + quote(std::string(raw).substr(0, 200) + "…") +
                              ": deeper than " + std::to_string(o_.limits.max_depth) +
                              " components");
        if (!out.empty()) out += '/';
        out += c;
        if (out.size() > o_.limits.max_path_length)
            return Unexpected("entry " + quote(std::string(raw).substr(0, 200) + "…") +
                              ": path longer than " + std::to_string(o_.limits.max_path_length) +
                              " bytes");
    }
    return out;
}

Result<Applier::SharedFd> Applier::parent_dir(const std::string& parent, bool create, int* err) {
    if (cached_ && cached_path_ == parent) return cached_;
    auto fd = open_dir_in_root(root_, parent, o_.resolver, create, err);
    if (!fd) return Unexpected(fd.error());
    cached_ = std::make_shared<Fd>(std::move(*fd));
    cached_path_ = parent;
    return cached_;
}

// Clears the way for an entry named `name` in pfd. Returns true if something was removed.
// *merge (when want_dir) says an existing directory stays and gets the new metadata.
Result<bool> Applier::make_room(int pfd, const std::string& name, bool want_dir, bool* merge) {
    struct stat st {};
    if (merge) *merge = false;
    if (::fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return false;
        return Unexpected(errno_string(errno));
    }
    if (want_dir && S_ISDIR(st.st_mode)) {
        *merge = true;
        return false;
    }
    invalidate();
    if (auto r = remove_at(pfd, name); !r) return Unexpected("cannot replace it: " + r.error());
    return true;
}

void Applier::get_times(archive_entry* e, timespec ts[2]) const {
    if (archive_entry_mtime_is_set(e)) {
        ts[1] = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    } else {
        ts[1] = {0, UTIME_OMIT};
    }
    ts[0] = archive_entry_atime_is_set(e)
                ? timespec{archive_entry_atime(e), archive_entry_atime_nsec(e)}
                : ts[1];
    for (int i = 0; i < 2; ++i)
        if (ts[i].tv_nsec != UTIME_OMIT && (ts[i].tv_nsec < 0 || ts[i].tv_nsec > 999999999))
            ts[i].tv_nsec = 0;
}

Result<void> Applier::set_xattrs(archive_entry* e, const std::string& path,
                                 const std::function<int(const char*, const void*, size_t)>& set) {
    return for_each_xattr(e, path, o_.limits.max_xattr_bytes,
                          [&](const char* name, const void* value, size_t size) -> Result<void> {
                              if (dropped_xattr(name)) {
                                  ++stats.skipped_xattrs;
                                  return {};
                              }
                              if (set(name, value, size) != 0) {
                                  // Namespaces this file system or this process can't set
                                  // (security.selinux without SELinux, trusted.* without
                                  // CAP_SYS_ADMIN): skipped, counted.
                                  if (errno == ENOTSUP || errno == EPERM || errno == EACCES ||
                                      errno == EINVAL) {
                                      ++stats.skipped_xattrs;
                                      return {};
                                  }
                                  return Unexpected("entry " + quote(path) + ": setting xattr " +
                                                    name + ": " + errno_string(errno));
                              }
                              return {};
                          });
}

Result<void> check_id(std::int64_t id, const char* what, const std::string& path) {
    // (uid_t)-1 means "unchanged" to chown; above it is not an id (CVE-2024-40635).
    if (id < 0 || id >= 0xffffffffLL)
        return Unexpected("entry " + quote(path) + ": invalid " + what + " " + std::to_string(id));
    return {};
}

// chown fails with EINVAL when the id has no mapping in our user namespace (rootless factory
// maps 0..N-1, N the size of the caller's subordinate range): say which id and what to do.
std::string chown_error(archive_entry* e, int err) {
    std::string ids =
        std::to_string(archive_entry_uid(e)) + ":" + std::to_string(archive_entry_gid(e));
    if (err == EINVAL && in_user_namespace())
        return "chown to " + ids +
               ": the id is not mapped in this user namespace (rootless: "
               "only ids below the size of the subordinate ranges in /etc/subuid and /etc/subgid "
               "exist; give the user a larger range)";
    return "chown to " + ids + ": " + errno_string(err);
}

// Owner, mode, xattrs on an open file or directory — in this order: chown clears setuid bits
// and security.capability, so those come after it.
Result<void> Applier::set_meta(int fd, archive_entry* e, const std::string& path) {
    if (auto r = check_id(archive_entry_uid(e), "uid", path); !r) return r;
    if (auto r = check_id(archive_entry_gid(e), "gid", path); !r) return r;
    if (chown_ && ::fchown(fd, static_cast<uid_t>(archive_entry_uid(e)),
                           static_cast<gid_t>(archive_entry_gid(e))) != 0)
        return Unexpected("entry " + quote(path) + ": " + chown_error(e, errno));
    if (::fchmod(fd, archive_entry_perm(e) & 07777) != 0)
        return Unexpected("entry " + quote(path) + ": chmod: " + errno_string(errno));
    return set_xattrs(e, path, [fd](const char* n, const void* v, size_t s) {
        return ::fsetxattr(fd, n, v, s, 0);
    });
}

Result<void> Applier::set_owner_at(int pfd, const std::string& name, archive_entry* e) {
    if (auto r = check_id(archive_entry_uid(e), "uid", name); !r) return r;
    if (auto r = check_id(archive_entry_gid(e), "gid", name); !r) return r;
    if (chown_ && ::fchownat(pfd, name.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
                             static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0)
        return Unexpected(chown_error(e, errno));
    return {};
}

Result<void> Applier::entry(archive* a, archive_entry* e) {
    if (++stats.entries > o_.limits.max_entries)
        return Unexpected("more than " + std::to_string(o_.limits.max_entries) + " entries");
    auto path = clean(archive_entry_pathname(e));
    if (!path) return Unexpected(path.error());
    const char* hardlink_target = archive_entry_hardlink(e);
    // An entry's size over the stream's cap is refused by the reader (TarReader::next).
    if (path->empty()) return root_entry(e, hardlink_target);

    auto slash = path->rfind('/');
    std::string parent = slash == std::string::npos ? "" : path->substr(0, slash);
    std::string name = slash == std::string::npos ? *path : path->substr(slash + 1);
    if (name.starts_with(".wh.")) return whiteout(parent, name);

    auto pfd = parent_dir(parent, true);
    if (!pfd) return Unexpected("entry " + quote(*path) + ": parent: " + pfd.error());
    int dirfd = (*pfd)->get();
    if (!overlay()) mark_written(*path);
    if (hardlink_target) return hardlink(e, hardlink_target, dirfd, name, *path);
    auto type = archive_entry_filetype(e);
    switch (type) {
    case AE_IFREG:
        return regular(a, e, dirfd, name, *path);
    case AE_IFDIR:
        return directory(e, dirfd, name, *path);
    case AE_IFLNK:
        return symlink(e, dirfd, name, *path);
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
        return special(e, type, dirfd, name, *path);
    case AE_IFSOCK:
        ++stats.skipped_other;
        return {};
    default:
        return Unexpected("entry " + quote(*path) + ": unknown file type");
    }
}

// "./" (or "/"): the root's own metadata. Anything else there would replace the root itself
// (umoci CVE-2021-29136: a symlink "." pointing elsewhere): refused.
Result<void> Applier::root_entry(archive_entry* e, const char* hardlink) {
    auto type = archive_entry_filetype(e);
    if (hardlink || type != AE_IFDIR)
        return Unexpected(std::string("entry \".\": a ") +
                          (hardlink ? "hardlink" : type_word(type)) + " would replace the root");
    Fd fd(::openat(root_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return Unexpected("entry \".\": " + errno_string(errno));
    if (auto r = set_meta(fd.get(), e, "."); !r) return r;
    Times t{"", {}};
    get_times(e, t.ts);
    dir_times_.push_back(std::move(t));
    stats.root_entry = true;
    ++stats.dirs;
    return {};
}

// image-spec layer.md "Whiteouts": `.wh..wh..opq` hides the directory's lower content,
// `.wh.NAME` hides NAME, other `.wh..wh.*` (AUFS metadata) are skipped, `.wh.` and `.wh..` are
// invalid (containerd validateWhiteout).
Result<void> Applier::whiteout(const std::string& parent, const std::string& name) {
    std::string path = parent.empty() ? name : parent + "/" + name;
    if (name == ".wh..wh..opq") {
        ++stats.opaque_dirs;
        return overlay() ? opaque_overlay(parent) : opaque_rootfs(parent);
    }
    if (name.starts_with(".wh..wh.")) {
        ++stats.skipped_other;
        return {};
    }
    std::string target = name.substr(4);
    if (target.empty() || target == "." || target == "..")
        return Unexpected("entry " + quote(path) + ": invalid whiteout");
    std::string target_path = parent.empty() ? target : parent + "/" + target;
    ++stats.whiteouts;

    if (overlay()) {
        auto pfd = parent_dir(parent, true);
        if (!pfd) return Unexpected("whiteout " + quote(path) + ": parent: " + pfd.error());
        struct stat st {};
        if (::fstatat((*pfd)->get(), target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            // This layer has NAME too: its own entry stays; a directory hides the lower one.
            return S_ISDIR(st.st_mode) ? opaque_overlay(target_path) : Result<void>{};
        }
        if (::mknodat((*pfd)->get(), target.c_str(), S_IFCHR, makedev(0, 0)) != 0)
            return Unexpected("whiteout " + quote(path) + ": mknod: " + errno_string(errno));
        whiteout_devs_.insert(target_path);
        return {};
    }

    if (written_.contains(target_path)) {
        // Whiteout and entry in one layer: the entry wins over the lower content.
        auto pfd = parent_dir(parent, false);
        struct stat st {};
        if (pfd && ::fstatat((*pfd)->get(), target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(st.st_mode))
            return clear_lower(target_path);
        return {};
    }
    // The parent is implied, as for any entry (containerd creates it too): both output modes
    // then give the same tree.
    auto pfd = parent_dir(parent, true);
    if (!pfd) return Unexpected("whiteout " + quote(path) + ": parent: " + pfd.error());
    auto keep = pfd; // remove_at may invalidate the cache
    invalidate();
    if (auto r = remove_at((*keep)->get(), target); !r)
        return Unexpected("whiteout " + quote(path) + ": " + r.error());
    return {};
}

Result<void> Applier::opaque_rootfs(const std::string& dir) {
    // The directory is implied by its marker, as a parent is by any entry.
    if (auto fd = open_dir_in_root(root_, dir, o_.resolver, true); !fd)
        return Unexpected("opaque " + quote(dir) + ": " + fd.error());
    return clear_lower(dir);
}

// Removes what lower layers put under `dir`, keeping what this layer wrote.
Result<void> Applier::clear_lower(const std::string& dir) {
    auto fd = open_dir_in_root(root_, dir, o_.resolver, false);
    if (!fd) return {}; // no such directory: nothing to hide
    Fd rd(::openat(fd->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!rd) return Unexpected("opaque " + quote(dir) + ": " + errno_string(errno));
    invalidate();
    auto r = remove_children_except(
        rd.get(), dir, [this](const std::string& rel) { return written_.contains(rel); });
    if (!r) return Unexpected("opaque " + quote(dir) + ": " + r.error());
    return {};
}

Result<void> Applier::opaque_overlay(const std::string& dir) {
    if (dir.empty())
        return Unexpected("an opaque whiteout at the top of a layer can't be expressed in an "
                          "overlay lower directory");
    auto slash = dir.rfind('/');
    std::string parent = slash == std::string::npos ? "" : dir.substr(0, slash);
    std::string name = slash == std::string::npos ? dir : dir.substr(slash + 1);
    auto pfd = parent_dir(parent, true);
    if (!pfd) return Unexpected("opaque " + quote(dir) + ": " + pfd.error());
    int p = (*pfd)->get();
    if (::mkdirat(p, name.c_str(), 0755) != 0 && errno != EEXIST)
        return Unexpected("opaque " + quote(dir) + ": mkdir: " + errno_string(errno));
    Fd fd(::openat(p, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Unexpected("opaque " + quote(dir) + ": not a directory in this layer");
    if (::fsetxattr(fd.get(), opaque_xattr_.c_str(), "y", 1, 0) != 0)
        return Unexpected("opaque " + quote(dir) + ": setting " + opaque_xattr_ + ": " +
                          errno_string(errno));
    return {};
}

Result<void> Applier::regular(archive* a, archive_entry* e, int pfd, const std::string& name,
                              const std::string& path) {
    if (auto r = make_room(pfd, name, false, nullptr); !r)
        return Unexpected("entry " + quote(path) + ": " + r.error());
    Fd fd(::openat(pfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return Unexpected("entry " + quote(path) + ": create: " + errno_string(errno));
    std::int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    std::int64_t end = 0;
    for (;;) {
        const void* buf = nullptr;
        size_t len = 0;
        la_int64_t offset = 0;
        int r = archive_read_data_block(a, &buf, &len, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN)
            return Unexpected(
                "entry " + quote(path) + ": " +
                (archive_error_string(a) ? archive_error_string(a) : "unreadable data"));
        if (offset < 0 || offset > size || static_cast<std::int64_t>(len) > size - offset)
            return Unexpected("entry " + quote(path) + ": data beyond its size");
        for (size_t done = 0; done < len;) {
            ssize_t n = ::pwrite(fd.get(), static_cast<const char*>(buf) + done, len - done,
                                 offset + static_cast<std::int64_t>(done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0)
                return Unexpected("entry " + quote(path) + ": write: " + errno_string(errno));
            done += static_cast<size_t>(n);
        }
        stats.content_bytes += len;
        end = std::max<std::int64_t>(end, offset + static_cast<std::int64_t>(len));
    }
    // A sparse file's tail hole.
    if (end < size && ::ftruncate(fd.get(), size) != 0)
        return Unexpected("entry " + quote(path) + ": truncate: " + errno_string(errno));
    if (auto r = set_meta(fd.get(), e, path); !r) return r;
    timespec ts[2];
    get_times(e, ts);
    if (::futimens(fd.get(), ts) != 0)
        return Unexpected("entry " + quote(path) + ": utimens: " + errno_string(errno));
    ++stats.files;
    return {};
}

Result<void> Applier::directory(archive_entry* e, int pfd, const std::string& name,
                                const std::string& path) {
    bool merge = false;
    auto removed = make_room(pfd, name, true, &merge);
    if (!removed) return Unexpected("entry " + quote(path) + ": " + removed.error());
    if (!merge && ::mkdirat(pfd, name.c_str(), 0700) != 0)
        return Unexpected("entry " + quote(path) + ": mkdir: " + errno_string(errno));
    Fd fd(::openat(pfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Unexpected("entry " + quote(path) + ": open: " + errno_string(errno));
    if (auto r = set_meta(fd.get(), e, path); !r) return r;
    if (overlay() && *removed) {
        // In a lower directory, a new directory where this layer had a whiteout (or anything
        // else) must not merge with the lower one: make it opaque.
        if (::fsetxattr(fd.get(), opaque_xattr_.c_str(), "y", 1, 0) != 0)
            return Unexpected("entry " + quote(path) + ": setting " + opaque_xattr_ + ": " +
                              errno_string(errno));
        whiteout_devs_.erase(path);
    }
    Times t{path, {}};
    get_times(e, t.ts);
    dir_times_.push_back(std::move(t));
    ++stats.dirs;
    return {};
}

Result<void> Applier::symlink(archive_entry* e, int pfd, const std::string& name,
                              const std::string& path) {
    const char* target = archive_entry_symlink(e);
    if (!target || !*target)
        return Unexpected("entry " + quote(path) + ": symlink without a target");
    if (auto r = make_room(pfd, name, false, nullptr); !r)
        return Unexpected("entry " + quote(path) + ": " + r.error());
    if (::symlinkat(target, pfd, name.c_str()) != 0)
        return Unexpected("entry " + quote(path) + ": symlink: " + errno_string(errno));
    if (auto r = set_owner_at(pfd, name, e); !r)
        return Unexpected("entry " + quote(path) + ": " + r.error());
    // Through the parent's descriptor, not following the last component.
    std::string at = "/proc/self/fd/" + std::to_string(pfd) + "/" + name;
    if (auto r = set_xattrs(e, path,
                            [&](const char* n, const void* v, size_t s) {
                                return ::lsetxattr(at.c_str(), n, v, s, 0);
                            });
        !r)
        return r;
    timespec ts[2];
    get_times(e, ts);
    if (::utimensat(pfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
        return Unexpected("entry " + quote(path) + ": utimens: " + errno_string(errno));
    ++stats.symlinks;
    return {};
}

// A hardlink's target is resolved in the root like any path, must exist and must not be a
// directory; linkat(…, 0) links a symlink itself, never what it points to (containerd
// hardlinkRootPath). Data carried by a hardlink entry is ignored (CVE-2016-5418).
Result<void> Applier::hardlink(archive_entry*, const char* raw_target, int pfd,
                               const std::string& name, const std::string& path) {
    auto target = clean(raw_target);
    if (!target) return Unexpected("hardlink " + quote(path) + ": " + target.error());
    if (target->empty() || *target == path)
        return Unexpected("hardlink " + quote(path) + ": invalid target " + quote(raw_target));
    auto slash = target->rfind('/');
    std::string tparent = slash == std::string::npos ? "" : target->substr(0, slash);
    std::string tname = slash == std::string::npos ? *target : target->substr(slash + 1);
    auto tfd = open_dir_in_root(root_, tparent, o_.resolver, false);
    struct stat st {};
    if (!tfd || ::fstatat(tfd->get(), tname.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return Unexpected("hardlink " + quote(path) + ": target " + quote(*target) +
                          " does not exist" +
                          (overlay() ? " in this layer (overlay snapshots can't link into lower "
                                       "layers)"
                                     : ""));
    if (S_ISDIR(st.st_mode))
        return Unexpected("hardlink " + quote(path) + ": target " + quote(*target) +
                          " is a directory");
    if (overlay() && whiteout_devs_.contains(*target))
        return Unexpected("hardlink " + quote(path) + ": target " + quote(*target) +
                          " is a whiteout");
    if (auto r = make_room(pfd, name, false, nullptr); !r)
        return Unexpected("hardlink " + quote(path) + ": " + r.error());
    if (::linkat(tfd->get(), tname.c_str(), pfd, name.c_str(), 0) != 0)
        return Unexpected("hardlink " + quote(path) + ": link to " + quote(*target) + ": " +
                          errno_string(errno));
    ++stats.hardlinks;
    return {};
}

Result<void> Applier::special(archive_entry* e, mode_t type, int pfd, const std::string& name,
                              const std::string& path) {
    bool device = type == AE_IFCHR || type == AE_IFBLK;
    dev_t rdev = device ? makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e)) : 0;
    // A character device 0/0 in a lower directory is a whiteout: never make one from a layer's
    // device entry, or it would mean something else.
    if (device && (!o_.devices || !mknod_ || (overlay() && type == AE_IFCHR && rdev == 0))) {
        ++stats.skipped_devices;
        return {};
    }
    if (auto r = make_room(pfd, name, false, nullptr); !r)
        return Unexpected("entry " + quote(path) + ": " + r.error());
    mode_t kind = type == AE_IFCHR ? S_IFCHR : type == AE_IFBLK ? S_IFBLK : S_IFIFO;
    if (::mknodat(pfd, name.c_str(), kind | 0600, rdev) != 0) {
        if (device && errno == EPERM) {
            ++stats.skipped_devices;
            return {};
        }
        return Unexpected("entry " + quote(path) + ": mknod: " + errno_string(errno));
    }
    if (auto r = set_owner_at(pfd, name, e); !r)
        return Unexpected("entry " + quote(path) + ": " + r.error());
    // The node was made just now by us and is not a symlink: following is harmless.
    if (::fchmodat(pfd, name.c_str(), archive_entry_perm(e) & 07777, 0) != 0)
        return Unexpected("entry " + quote(path) + ": chmod: " + errno_string(errno));
    timespec ts[2];
    get_times(e, ts);
    if (::utimensat(pfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
        return Unexpected("entry " + quote(path) + ": utimens: " + errno_string(errno));
    ++(device ? stats.devices : stats.fifos);
    return {};
}

// Directory mtimes last: every entry created inside a directory changed its mtime.
Result<void> Applier::finish() {
    invalidate();
    for (const auto& t : dir_times_) {
        if (t.path.empty()) {
            if (::futimens(root_, t.ts) != 0)
                return Unexpected("root: utimens: " + errno_string(errno));
            continue;
        }
        auto slash = t.path.rfind('/');
        auto pfd = parent_dir(slash == std::string::npos ? "" : t.path.substr(0, slash), false);
        if (!pfd) continue; // replaced later in the layer
        std::string name = slash == std::string::npos ? t.path : t.path.substr(slash + 1);
        struct stat st {};
        if (::fstatat((*pfd)->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        if (::utimensat((*pfd)->get(), name.c_str(), t.ts, AT_SYMLINK_NOFOLLOW) != 0)
            return Unexpected("entry " + quote(t.path) + ": utimens: " + errno_string(errno));
    }
    return {};
}

} // namespace

std::optional<layer::Compression> compression_of_media_type(std::string_view t) {
    namespace mt = oci::media_type;
    if (t == mt::layer_tar || t == "application/vnd.oci.image.layer.nondistributable.v1.tar")
        return layer::Compression::none;
    if (t == mt::layer_gzip || t == mt::docker_layer_gzip || t == mt::docker_foreign_layer_gzip ||
        t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
        return layer::Compression::gzip;
    if (t == mt::layer_zstd || t == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
        return layer::Compression::zstd;
    return std::nullopt;
}

Result<ApplyStats> apply_layer(const std::filesystem::path& blob, int root_dirfd,
                               const ApplyOptions& options) {
    auto reader = TarReader::open(blob, options.compression, options.limits.stream);
    if (!reader) return Unexpected(reader.error());
    auto& tar = **reader;
    const auto& prefix = tar.prefix();
    Applier applier(root_dirfd, options, tar.stream());
    for (;;) {
        auto e = tar.next();
        if (!e) return Unexpected(e.error());
        if (!*e) break;
        if (options.observe)
            if (auto ok = options.observe(*e); !ok) return Unexpected(prefix + ok.error());
        if (auto ok = applier.entry(tar.handle(), *e); !ok)
            return Unexpected(tar.stream_error().empty() ? prefix + ok.error()
                                                         : tar.stream_error());
    }
    if (auto r = tar.finish(); !r) return Unexpected(r.error());
    if (auto r = applier.finish(); !r) return Unexpected(prefix + r.error());

    ApplyStats stats = std::move(applier.stats);
    stats.diff_id = tar.stream().diff_id();
    stats.digest = tar.stream().digest();
    stats.compressed_bytes = tar.stream().compressed_bytes();
    stats.tar_bytes = tar.stream().uncompressed_bytes();
    if (!options.expected_digest.empty() && options.expected_digest != stats.digest)
        return Unexpected(prefix + "the blob hashes to " + stats.digest + ", expected " +
                          options.expected_digest);
    if (!options.expected_diff_id.empty() && options.expected_diff_id != stats.diff_id)
        return Unexpected(prefix + "the uncompressed layer hashes to " + stats.diff_id +
                          ", but its diff_id is " + options.expected_diff_id);
    return stats;
}

} // namespace factory::runtime
