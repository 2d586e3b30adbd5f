#include "factory/runtime/overlay.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "factory/runtime/rootless.hpp"
#include "factory/util/fd.hpp"

namespace factory::runtime {

namespace {

constexpr std::size_t page_limit = 4095; // mount(2) copies one page, NUL included

// overlayfs splits its options at ',' and lowerdir at ':'; both may be escaped with '\'.
std::string escape(const std::string& path) {
    std::string out;
    for (char c : path) {
        if (c == ',' || c == ':' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

// The tunables, in the order they are given up when the kernel says EINVAL (newest first).
const char* const tunables[] = {"xino=off", "metacopy=off", "index=off", "redirect_dir=off"};

std::string build_options(const std::vector<std::string>& lowers, const fs::path& upper,
                          const fs::path& work, const OverlayOptions& options,
                          std::size_t tunable_count) {
    std::string o = "lowerdir=";
    for (std::size_t i = 0; i < lowers.size(); ++i) {
        if (i) o += ':';
        o += escape(lowers[i]);
    }
    if (!options.readonly)
        o += ",upperdir=" + escape(upper.string()) + ",workdir=" + escape(work.string());
    if (resolve(options.xattrs) == OverlayXattrs::user) o += ",userxattr";
    for (std::size_t i = std::size(tunables) - tunable_count; i < std::size(tunables); ++i)
        o += std::string(",") + tunables[i];
    return o;
}

} // namespace

OverlayXattrs resolve(OverlayXattrs x) {
    if (x != OverlayXattrs::automatic) return x;
    // Asked once: a process does not change user namespace (factory never calls setns).
    static const bool user = in_user_namespace();
    return user ? OverlayXattrs::user : OverlayXattrs::trusted;
}

std::string overlay_xattr(OverlayXattrs x, std::string_view name) {
    return std::string(resolve(x) == OverlayXattrs::user ? "user.overlay." : "trusted.overlay.") +
           std::string(name);
}

OverlayMount::OverlayMount(OverlayMount&& other) noexcept
    : target_(std::exchange(other.target_, {})), options_(std::move(other.options_)) {}

OverlayMount& OverlayMount::operator=(OverlayMount&& other) noexcept {
    if (this != &other) {
        (void)unmount();
        target_ = std::exchange(other.target_, {});
        options_ = std::move(other.options_);
    }
    return *this;
}

OverlayMount::~OverlayMount() {
    (void)unmount();
}

Result<OverlayMount> OverlayMount::mount(const std::vector<fs::path>& lowers, const fs::path& upper,
                                         const fs::path& work, const fs::path& target,
                                         const OverlayOptions& options) {
    std::vector<std::string> paths;
    for (const auto& l : lowers)
        paths.push_back(fs::absolute(l).string());
    // overlayfs needs a lower directory (two without an upper one on older kernels): an empty
    // one beside the work directory.
    if (paths.empty() || (options.readonly && paths.size() < 2)) {
        auto empty = fs::absolute(work).parent_path() / ".empty-lower";
        if (::mkdir(empty.c_str(), 0755) != 0 && errno != EEXIST)
            return Unexpected("cannot create " + empty.string() + ": " + errno_string(errno));
        paths.push_back(empty.string());
    }
    auto upper_abs = fs::absolute(upper), work_abs = fs::absolute(work);

    // Too long for one page: short /proc/self/fd/N names for descriptors held during mount(2).
    std::vector<Fd> held;
    if (build_options(paths, upper_abs, work_abs, options, std::size(tunables)).size() >
        page_limit) {
        for (auto& p : paths) {
            Fd fd(::open(p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (!fd)
                return Unexpected("cannot open lower directory " + p + ": " + errno_string(errno));
            p = "/proc/self/fd/" + std::to_string(fd.get());
            held.push_back(std::move(fd));
        }
    }

    unsigned long flags = MS_NOATIME;
    if (options.nodev) flags |= MS_NODEV;
    if (options.readonly) flags |= MS_RDONLY;
    std::string data;
    int err = 0;
    for (std::size_t n = std::size(tunables);; --n) {
        data = build_options(paths, upper_abs, work_abs, options, n);
        if (data.size() > page_limit)
            return Unexpected("mount overlay on " + target.string() + ": " +
                              std::to_string(lowers.size()) + " layers don't fit in the " +
                              "mount options (" + std::to_string(data.size()) + " bytes)");
        if (::mount("overlay", target.c_str(), "overlay", flags, data.c_str()) == 0) break;
        err = errno;
        if (err != EINVAL || n == 0)
            return Unexpected("mount overlay on " + target.string() + " (" + data +
                              "): " + errno_string(err));
    }
    OverlayMount m;
    m.target_ = target;
    m.options_ = std::move(data);
    return m;
}

Result<void> OverlayMount::unmount() {
    if (target_.empty()) return {};
    auto target = std::exchange(target_, {});
    if (::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL)
        return Unexpected("cannot unmount " + target.string() + ": " + errno_string(errno));
    return {};
}

} // namespace factory::runtime
