#include "factory/runtime/changeset.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include "factory/runtime/in_root.hpp"
#include "factory/runtime/java_keystore.hpp"
#include "factory/util/files.hpp"
#include "factory/util/pattern.hpp"

namespace factory::runtime {

namespace {

// docs/runtime.md "What a RUN step leaves out": files package managers rewrite on every run
// with times, counters or host details in them. Patterns per util/pattern.hpp.
const char* const noise_patterns[] = {
    "var/log/dpkg.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
};

// Content emptied, file kept (systemd's postinst writes a fresh id; each container gets its
// own at boot when the file is empty).
constexpr std::string_view emptied_file = "etc/machine-id";

// A JKS trust store is a few hundred kB (Debian's: 160 kB for 140 certificates).
constexpr std::uint64_t keystore_max_size = 64u << 20;

bool under_scratch_dir(std::string_view path) {
    return path.starts_with("run/") || path.starts_with("tmp/");
}

bool dropped_xattr(std::string_view name, bool host) {
    if (name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")) return true;
    return host && (name == "security.selinux" || name == "security.ima" || name == "security.evm");
}

Result<std::vector<std::pair<std::string, std::string>>> read_xattrs(const std::string& path,
                                                                     bool drop_host) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string names(1024, '\0');
    ssize_t n;
    for (;;) {
        n = ::llistxattr(path.c_str(), names.data(), names.size());
        if (n >= 0) break;
        if (errno == ENOTSUP) return out;
        if (errno != ERANGE) return Unexpected(path + ": listxattr: " + errno_string(errno));
        names.resize(names.size() * 4);
    }
    names.resize(static_cast<std::size_t>(n));
    for (std::size_t pos = 0; pos < names.size();) {
        std::string name(names.c_str() + pos);
        pos += name.size() + 1;
        if (name.empty() || dropped_xattr(name, drop_host)) continue;
        std::string value(256, '\0');
        for (;;) {
            ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
            if (v >= 0) {
                value.resize(static_cast<std::size_t>(v));
                break;
            }
            if (errno == ENODATA) break;
            if (errno != ERANGE)
                return Unexpected(path + ": getxattr " + name + ": " + errno_string(errno));
            value.resize(value.size() * 4);
        }
        out.emplace_back(std::move(name), std::move(value));
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool has_xattr(const std::string& path, const char* name, std::string* value = nullptr) {
    char buf[16];
    ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof buf);
    if (n < 0) return errno == ERANGE; // present, just long
    if (value) value->assign(buf, static_cast<std::size_t>(n));
    return true;
}

layer::Entry whiteout_entry(std::string path) {
    layer::Entry e;
    e.path = std::move(path);
    e.type = layer::Entry::Type::file;
    e.mode = 0644;
    return e;
}

struct Walker {
    fs::path upper;
    const NormalizeOptions& options;
    std::set<std::string> stubs;
    std::vector<layer::Entry> entries;
    std::map<std::pair<dev_t, ino_t>, std::vector<std::size_t>> inodes; // files with nlink > 1

    void skip(const std::string& path, const std::string& why) {
        if (options.on_skip) options.on_skip(path, why);
    }

    Result<void> walk_dir(int dirfd, const std::string& prefix);
    Result<void> one(int dirfd, const std::string& name, const std::string& rel);
};

Result<void> Walker::walk_dir(int dirfd, const std::string& prefix) {
    auto list = detail::list_dir(dirfd);
    if (!list) return Unexpected((upper / prefix).string() + ": " + list.error());
    for (const auto& e : *list) {
        std::string rel = prefix.empty() ? e.name : prefix + "/" + e.name;
        if (auto r = one(dirfd, e.name, rel); !r) return r;
    }
    return {};
}

Result<void> Walker::one(int dirfd, const std::string& name, const std::string& rel) {
    struct stat st {};
    std::string full = (upper / rel).string();
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return Unexpected(full + ": " + errno_string(errno));
    bool noise = options.drop_noise;
    bool stub = stubs.contains(rel);

    // overlayfs.rst "whiteouts": a character device 0/0.
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
        auto slash = rel.rfind('/');
        std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash + 1);
        entries.push_back(whiteout_entry(parent + ".wh." + name));
        return {};
    }

    layer::Entry e;
    e.path = rel;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    auto xattrs = read_xattrs(full, options.drop_host_xattrs);
    if (!xattrs) return Unexpected(xattrs.error());
    e.xattrs = std::move(*xattrs);

    if (S_ISDIR(st.st_mode)) {
        if (has_xattr(full, overlay_xattr(options.overlay_xattrs, "redirect").c_str()))
            return Unexpected(full + ": a renamed directory recorded as an overlay redirect "
                                     "(mount with redirect_dir=off)");
        Fd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) return Unexpected(full + ": " + errno_string(errno));
        if (stub) {
            auto children = detail::list_dir(sub.get());
            if (children && children->empty()) return {}; // the runtime's mount point
        }
        e.type = layer::Entry::Type::dir;
        std::string opaque;
        bool is_opaque =
            has_xattr(full, overlay_xattr(options.overlay_xattrs, "opaque").c_str(), &opaque) &&
            opaque == "y";
        entries.push_back(std::move(e));
        // The opaque marker comes first among the directory's entries in the tar anyway
        // (".wh..wh..opq" sorts early); sort_entries places it.
        if (is_opaque) entries.push_back(whiteout_entry(rel + "/.wh..wh..opq"));
        return walk_dir(sub.get(), rel);
    }
    if (noise && under_scratch_dir(rel)) return {};
    if (S_ISREG(st.st_mode)) {
        if (has_xattr(full, overlay_xattr(options.overlay_xattrs, "metacopy").c_str()))
            return Unexpected(full + ": a metadata-only copy-up (mount with metacopy=off)");
        if (stub && st.st_size == 0) return {};
        if (noise && std::any_of(std::begin(noise_patterns), std::end(noise_patterns),
                                 [&](const char* p) { return path_match(p, rel); }))
            return {};
        e.type = layer::Entry::Type::file;
        if (noise && rel == emptied_file) {
            entries.push_back(std::move(e)); // no source: empty content
            return {};
        }
        e.source = full;
        e.size = static_cast<std::uint64_t>(st.st_size);
        if (st.st_nlink > 1) inodes[{st.st_dev, st.st_ino}].push_back(entries.size());
        entries.push_back(std::move(e));
        return {};
    }
    if (S_ISLNK(st.st_mode)) {
        Fd fd(::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        auto target =
            fd ? read_link_fd(fd.get()) : Result<std::string>(Unexpected(errno_string(errno)));
        if (!target) return Unexpected(full + ": " + target.error());
        e.type = layer::Entry::Type::symlink;
        e.link = std::move(*target);
        entries.push_back(std::move(e));
        return {};
    }
    skip(rel, S_ISCHR(st.st_mode)    ? "character device"
              : S_ISBLK(st.st_mode)  ? "block device"
              : S_ISFIFO(st.st_mode) ? "fifo"
              : S_ISSOCK(st.st_mode) ? "socket"
                                     : "unknown file type");
    return {};
}

// Files sharing an inode: the first path in canonical order keeps the content, the others
// become hardlinks to it (a reader meets the target first).
void link_hardlinks(Walker& w) {
    for (auto& [inode, indexes] : w.inodes) {
        if (indexes.size() < 2) continue;
        std::sort(indexes.begin(), indexes.end(), [&](std::size_t a, std::size_t b) {
            return layer::path_less(w.entries[a].path, w.entries[b].path);
        });
        const std::string& first = w.entries[indexes[0]].path;
        for (std::size_t i = 1; i < indexes.size(); ++i) {
            auto& e = w.entries[indexes[i]];
            e.type = layer::Entry::Type::hardlink;
            e.link = first;
            e.source.clear();
            e.size = 0;
            e.xattrs.clear();
        }
    }
}

// Under /run and /tmp only whiteouts (and the directories leading to them) stay: what a step
// leaves there is scratch, but deleting a lower layer's file there is a real change.
void prune_scratch_dirs(std::vector<layer::Entry>& entries) {
    std::set<std::string> needed;
    for (const auto& e : entries) {
        if (!under_scratch_dir(e.path) || e.type == layer::Entry::Type::dir) continue;
        for (auto p = e.path; !p.empty();) {
            auto slash = p.rfind('/');
            p.erase(slash == std::string::npos ? 0 : slash);
            if (!p.empty()) needed.insert(p);
        }
    }
    std::erase_if(entries, [&](const layer::Entry& e) {
        return e.type == layer::Entry::Type::dir && under_scratch_dir(e.path) &&
               !needed.contains(e.path);
    });
}

// Java's trust store, if the upper dir has one, as content with its dates at the epoch; left
// to be streamed as it is when it is no JKS store of Debian's (java_keystore.hpp).
Result<void> keystore_at_epoch(int root_fd, std::vector<layer::Entry>& entries,
                               std::int64_t epoch) {
    auto e = std::find_if(entries.begin(), entries.end(), [](const layer::Entry& x) {
        return x.path == java_cacerts_path && x.type == layer::Entry::Type::file &&
               !x.source.empty();
    });
    if (e == entries.end()) return {};
    auto slash = e->path.rfind('/');
    auto dir = open_dir_in_root(root_fd, e->path.substr(0, slash), Resolver::automatic, false);
    if (!dir) return Unexpected(dir.error());
    Fd fd(::openat(dir->get(), e->path.c_str() + slash + 1, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) return Unexpected(e->path + ": " + errno_string(errno));
    if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != e->size ||
        e->size > keystore_max_size)
        return {}; // changed under us or too big to be a trust store: written as it is
    std::string bytes(e->size, '\0');
    for (std::size_t at = 0; at < bytes.size();) {
        auto n = read_some(fd.get(), bytes.data() + at, bytes.size() - at);
        if (!n) return Unexpected(e->path + ": " + n.error());
        if (*n == 0) return Unexpected(e->path + ": shorter than its size");
        at += *n;
    }
    auto normalized = java_keystore_at_epoch(bytes, epoch);
    if (!normalized) return {};
    e->data = std::move(*normalized);
    e->source.clear();
    e->sha256.clear();
    return {};
}

} // namespace

bool is_noise(std::string_view path) {
    if (under_scratch_dir(path)) return true;
    return std::any_of(std::begin(noise_patterns), std::end(noise_patterns),
                       [&](const char* p) { return path_match(p, path); });
}

Result<std::vector<layer::Entry>> diff_upper(const fs::path& upper,
                                             const NormalizeOptions& options) {
    Fd root(::open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) return Unexpected("cannot open " + upper.string() + ": " + errno_string(errno));
    Walker w{fs::absolute(upper), options, {}, {}, {}};
    for (const auto& s : options.mount_stubs)
        w.stubs.insert(clean_relative(s.starts_with('/') ? s.substr(1) : s));
    if (auto r = w.walk_dir(root.get(), ""); !r) return Unexpected(r.error());
    link_hardlinks(w);
    if (options.drop_noise) prune_scratch_dirs(w.entries);
    if (options.epoch)
        if (auto r = keystore_at_epoch(root.get(), w.entries, *options.epoch); !r)
            return Unexpected(upper.string() + ": " + r.error());
    auto sorted = layer::sort_entries(std::move(w.entries));
    if (!sorted) return Unexpected(upper.string() + ": " + sorted.error());
    return sorted;
}

} // namespace factory::runtime
