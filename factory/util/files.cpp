#include "factory/util/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

namespace factory {

std::string unique_suffix() {
    static std::atomic<unsigned> counter{0};
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     std::hash<std::thread::id>{}(std::this_thread::get_id())};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%d-%u-%08llx", static_cast<int>(::getpid()), counter++,
                  static_cast<unsigned long long>(rng() & 0xffffffffu));
    return buf;
}

AtomicFile::AtomicFile(fs::path target, unsigned mode) : target_(std::move(target)) {
    temp_ = target_.parent_path() /
            (std::string(temp_prefix) + target_.filename().string() + "-" + unique_suffix());
    fd_.reset(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd_) throw Error("cannot create " + temp_.string() + ": " + errno_string(errno));
    ::fchmod(fd_.get(), mode); // not subject to the umask: the store's modes are ours
}

AtomicFile::~AtomicFile() {
    if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(std::string_view data) {
    if (auto r = write_all(fd_.get(), data.data(), data.size()); !r)
        throw Error("cannot write " + temp_.string() + ": " + r.error());
}

void AtomicFile::commit() {
    if (::fsync(fd_.get()) != 0)
        throw Error("cannot fsync " + temp_.string() + ": " + errno_string(errno));
    fd_.reset();
    if (::rename(temp_.c_str(), target_.c_str()) != 0)
        throw Error("failed to rename " + temp_.string() + " to " + target_.string() + ": " +
                    errno_string(errno));
    committed_ = true;
    fsync_dir(target_.parent_path());
}

void fsync_dir(const fs::path& dir) {
    Fd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd) ::fsync(fd.get()); // best effort: some file systems refuse fsync on directories
}

Result<void> write_all(int fd, const void* data, std::size_t size) {
    auto p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Unexpected(errno_string(errno));
        }
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return {};
}

Result<std::size_t> read_some(int fd, void* data, std::size_t size) {
    for (;;) {
        ssize_t n = ::read(fd, data, size);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) return Unexpected(errno_string(errno));
    }
}

Result<std::string> read_file(const fs::path& path, std::uint64_t max_size) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Unexpected("cannot open " + path.string() + ": " + errno_string(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return Unexpected("cannot stat " + path.string() + ": " + errno_string(errno));
    if (!S_ISREG(st.st_mode)) return Unexpected(path.string() + " is not a regular file");
    if (static_cast<std::uint64_t>(st.st_size) > max_size)
        return Unexpected(path.string() + " is larger than " + std::to_string(max_size) + " bytes");
    std::string out;
    // The size it has now: one allocation, not a doubling string's copies (the stat cache's
    // 2.5 MB of a 20,000-file tree cost a no-op rebuild a tenth of its page faults that way).
    out.reserve(static_cast<std::size_t>(st.st_size));
    char buf[65536];
    for (;;) {
        auto n = read_some(fd.get(), buf, sizeof buf);
        if (!n) return Unexpected("cannot read " + path.string() + ": " + n.error());
        if (*n == 0) break;
        if (out.size() + *n > max_size)
            return Unexpected(path.string() + " is larger than " + std::to_string(max_size) +
                              " bytes");
        out.append(buf, *n);
    }
    return out;
}

void write_file_atomic(const fs::path& path, std::string_view data, unsigned mode) {
    AtomicFile f(path, mode);
    f.write(data);
    f.commit();
}

TempDir::TempDir(const fs::path& parent, std::string_view prefix) {
    std::string templ = (parent / (std::string(prefix) + "XXXXXX")).string();
    if (!::mkdtemp(templ.data()))
        throw Error("cannot create a temporary directory in " + parent.string() + ": " +
                    errno_string(errno));
    path_ = templ;
}

TempDir::~TempDir() {
    if (keep_) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
}

namespace {

// mountinfo's fields are separated by spaces; a space, tab, newline or backslash in a path is
// written as \ooo (octal).
std::string unescape_mount_path(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
            s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out +=
                static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

} // namespace

std::vector<fs::path> mounts_under(const fs::path& dir) {
    std::vector<fs::path> out;
    auto text = read_file("/proc/self/mountinfo", 16u << 20);
    if (!text) return out;
    const std::string prefix = dir.lexically_normal().string();
    std::string_view rest = *text;
    while (!rest.empty()) {
        auto nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT …": the fifth field.
        std::size_t at = 0;
        for (int field = 0; field < 4 && at != std::string_view::npos; ++field) {
            at = line.find(' ', at);
            if (at != std::string_view::npos) ++at;
        }
        if (at == std::string_view::npos) continue;
        auto point = unescape_mount_path(line.substr(at, line.find(' ', at) - at));
        if (point == prefix || (point.size() > prefix.size() && point.starts_with(prefix) &&
                                point[prefix.size()] == '/'))
            out.emplace_back(point);
    }
    std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
        return a.native().size() > b.native().size();
    });
    return out;
}

} // namespace factory
