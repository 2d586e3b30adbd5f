#pragma once
// A walk of a directory tree on the host, for the copy planner: every directory is opened
// relative to its parent's descriptor with O_NOFOLLOW, and every entry is lstat'ed relative to
// its directory (fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)), so the kernel never resolves a full
// path again and a symlink is never followed, wherever it points. Names are read with
// getdents64 into one buffer per directory and visited in byte order.
//
// With more than one thread, directories are listed and their entries lstat'ed by worker
// threads ahead of the visitor (the system calls are most of a no-op rebuild's walk), in the
// order the visitor will need them; the visitor still runs on the calling thread and sees
// exactly what, and in the order, a walk on one thread shows it.

#include <sys/stat.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/pattern.hpp"

namespace factory::builder {

// One entry met by the walk. The views are valid only during the visit.
struct HostEntry {
    std::string_view rel;  // root-relative path, '/'-separated ("src/a/b.txt")
    std::string_view full; // absolute host path (root + "/" + rel)
    std::string_view name; // the last component
    const struct stat& st; // its lstat
    int dir_fd;            // the open directory holding it (for readlink_at); -1 in a parallel walk
    // A parallel walk reads a symlink's target when it lists the directory: that target, or the
    // error readlink_at gave. nullptr otherwise: read it with readlink_at(dir_fd, …).
    const Result<std::string>* link = nullptr;
};

// What the visitor wants done with a directory it was shown (ignored for other entries).
enum class Descend { no, yes };

class HostWalk {
  public:
    // `root` is the realpath of the root; `ignore` (optional) names root-relative paths to
    // leave out (an ignored directory is still walked when a rule may re-include something
    // below it, but not shown).
    // `threads` > 1 (0: one per core): a parallel walk, `threads` workers listing ahead of the
    // visitor (which waits on them most of the time).
    HostWalk(std::string root, const IgnoreRules* ignore, unsigned threads = 1);

    using Visitor = std::function<Descend(const HostEntry&)>;

    // Shows every entry below the root-relative directory `rel` ("" for the root) to
    // `visit`, depth first, each directory's entries in byte order of their names, a directory
    // before its contents. `rel` is opened one component at a time with O_NOFOLLOW, so a
    // symlink on the way is an error. Errors name the full host path: a directory that can't
    // be opened or read, an entry that vanished between the directory read and its stat. An
    // exception thrown by `visit` passes through. A parallel walk lists a directory before the
    // visitor has seen it (a Descend::no then only skips what was read), and reports the first
    // error in the order of the walk, as one thread would.
    Result<void> walk(std::string_view rel, const Visitor& visit);

    // The lstat of root-relative `rel`, its parent directory opened as walk() does.
    Result<struct stat> stat(std::string_view rel);

    const std::string& root() const noexcept { return root_; }

  private:
    Result<Fd> open_dir(std::string_view rel);
    Result<void> walk_fd(const Fd& dir, const Visitor& visit);
    Result<void> walk_parallel(Fd dir, std::string_view rel, const Visitor& visit);

    std::string root_;
    const IgnoreRules* ignore_;
    unsigned threads_;
    std::string path_;        // root_ + "/" + the relative path being walked
    std::vector<char> dents_; // getdents64's buffer, shared by every directory
};

// The target of the symlink `name` in the directory `dir_fd`.
Result<std::string> readlink_at(int dir_fd, std::string_view name, std::string_view full);

// The target of the symlink `e`: the one its walk read, or readlink_at.
Result<std::string> link_target(const HostEntry& e);

} // namespace factory::builder
