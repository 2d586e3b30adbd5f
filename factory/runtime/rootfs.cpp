#include "factory/runtime/rootfs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "factory/runtime/in_root.hpp"
#include "factory/util/fd.hpp"

namespace factory::runtime {

namespace {

Result<void> make_dir(const fs::path& p) {
    if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST)
        return Unexpected("cannot create " + p.string() + ": " + errno_string(errno));
    ::chmod(p.c_str(), 0755); // not subject to the umask
    return {};
}

} // namespace

Result<void> make_mount_stubs(const fs::path& dir, const std::vector<MountTarget>& targets) {
    for (const auto& t : targets) {
        auto parts = split_path(t.path);
        if (parts.empty()) continue;
        fs::path p = dir;
        for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
            if (parts[i] == "..") return Unexpected("mount target " + t.path + " has '..'");
            p /= std::string(parts[i]);
            if (auto r = make_dir(p); !r) return r;
        }
        p /= std::string(parts.back());
        if (t.directory) {
            if (auto r = make_dir(p); !r) return r;
            continue;
        }
        Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd)
            return Unexpected("cannot create mount point " + p.string() + ": " +
                              errno_string(errno));
        ::fchmod(fd.get(), 0644);
    }
    return {};
}

Result<Rootfs> Rootfs::create(const fs::path& scratch, const std::vector<fs::path>& lowers,
                              const std::vector<MountTarget>& targets,
                              const OverlayOptions& options) {
    Rootfs r;
    r.scratch_ = fs::absolute(scratch);
    r.merged_ = r.scratch_ / "merged";
    std::error_code ec;
    fs::create_directories(r.scratch_, ec);
    if (ec) return Unexpected("cannot create " + r.scratch_.string() + ": " + ec.message());
    for (const char* d : {"upper", "work", "stubs", "merged"})
        if (auto m = make_dir(r.scratch_ / d); !m) return Unexpected(m.error());
    if (auto s = make_mount_stubs(r.scratch_ / "stubs", targets); !s) return Unexpected(s.error());
    for (const auto& t : targets)
        r.stubs_.push_back(t.path);

    auto all = lowers;
    all.push_back(r.scratch_ / "stubs"); // lowest: never overrides the image
    auto m = OverlayMount::mount(all, r.upper(), r.scratch_ / "work", r.merged_, options);
    if (!m) return Unexpected(m.error());
    r.mount_ = std::move(*m);
    return r;
}

} // namespace factory::runtime
