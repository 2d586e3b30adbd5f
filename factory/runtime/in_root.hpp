#pragma once
// Path resolution confined to a root directory (research/oci-specs-security.md §6): every
// lookup starts at a directory fd and never leaves it, whatever the symlinks on the way say.
//
// Two resolvers with the same semantics — symlinks are followed as if the root were "/", ".."
// stops at the root, /proc magic links are refused:
//   openat2  the kernel's RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS (Linux ≥ 5.6);
//   walk     a component-wise walk: each component opened with O_NOFOLLOW from its parent's
//            fd, symlinks read with readlinkat and their target resolved again from the root
//            (at most 40 of them, like the kernel). Used where openat2 is missing (ENOSYS),
//            and to create missing parents.
// Both are safe against a hostile tree as long as nobody else modifies it concurrently: the
// applier is the only writer of the trees it resolves in.

#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"

namespace factory::runtime {

enum class Resolver {
    automatic, // openat2 when the kernel has it, else walk
    openat2,   // openat2 only (an error on kernels without it)
    walk,      // the component-wise walk only (tests, old kernels)
};

// Splits a relative path into its non-empty components ("a//b/" → {"a","b"}).
std::vector<std::string_view> split_path(std::string_view path);

// True if this kernel has openat2 (probed once).
bool have_openat2() noexcept;

// Opens the directory `rel` ("" = the root itself) inside root_fd, following symlinks in root.
// Returns an O_PATH|O_DIRECTORY descriptor. With create_missing, missing directories are made
// (mode 0755, owned by the caller) along the resolved path — a dangling in-root symlink gets its
// target's directories created, as containerd's applier does. Errors carry errno's text and the
// path ("etc/x: Not a directory"); *err_out, if given, gets the errno.
Result<Fd> open_dir_in_root(int root_fd, std::string_view rel, Resolver resolver,
                            bool create_missing, int* err_out = nullptr);

// Removes `name` in dirfd without following it: unlink for a non-directory, a depth-first
// removal for a directory (descending by fd, never through a symlink). ENOENT is not an error.
Result<void> remove_at(int dirfd, const std::string& name);

// Removes every entry of the directory dirfd (opened O_RDONLY|O_DIRECTORY) for which
// keep(relative_path) is false; directories that are kept are descended into and filtered the
// same way. `prefix` is the path of dirfd that relative paths are built from ("a/b").
template <class Keep>
Result<void> remove_children_except(int dirfd, const std::string& prefix, Keep keep);

// Reads a symlink's target given a descriptor opened with O_PATH|O_NOFOLLOW on it.
Result<std::string> read_link_fd(int fd);

// ---- implementation details used by the template ---------------------------------------------

namespace detail {
struct DirEntryName {
    std::string name;
    bool is_dir;
};
// Lists dirfd's entries (not "." and ".."). Consumes nothing: dirfd stays open and usable.
Result<std::vector<DirEntryName>> list_dir(int dirfd);
Result<Fd> open_subdir_nofollow(int dirfd, const std::string& name);
} // namespace detail

template <class Keep>
Result<void> remove_children_except(int dirfd, const std::string& prefix, Keep keep) {
    auto entries = detail::list_dir(dirfd);
    if (!entries) return Unexpected(entries.error());
    for (const auto& e : *entries) {
        std::string rel = prefix.empty() ? e.name : prefix + "/" + e.name;
        if (!keep(rel)) {
            if (auto r = remove_at(dirfd, e.name); !r) return r;
        } else if (e.is_dir) {
            auto sub = detail::open_subdir_nofollow(dirfd, e.name);
            if (!sub) return Unexpected(sub.error());
            if (auto r = remove_children_except(sub->get(), rel, keep); !r) return r;
        }
    }
    return {};
}

} // namespace factory::runtime
