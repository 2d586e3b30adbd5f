#include "factory/export/ext4.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "factory/export/disk_ids.hpp"
#include "factory/export/rootfs.hpp"
#include "factory/runtime/process.hpp"
#include "factory/util/files.hpp"
#include "factory/util/interrupt.hpp"

namespace factory::exporter {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t block = 4096;
constexpr std::uint64_t inode_size = 256;

// The features are ours, not the host's /etc/mke2fs.conf: the bytes must not depend on the
// machine, and the file system must mount under the kernels and bootloaders an AMI meets
// (no metadata_csum_seed or orphan_file, which GRUB 2.06 and kernels before 5.15 refuse).
constexpr const char* mke2fs_conf = R"([defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 0
	lazy_itable_init = false
	lazy_journal_init = false

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
)";

std::uint64_t blocks_of(std::uint64_t bytes) {
    return (bytes + block - 1) / block;
}

fs::path tool(const std::string& name) {
    auto path = runtime::find_program(name);
    if (path.empty())
        throw Error(name + " not found in PATH, /usr/sbin or /sbin (install e2fsprogs)");
    return path;
}

// Runs argv with stdout discarded and stderr kept; returns the exit status and stderr.
std::pair<int, std::string> run_tool(std::vector<std::string> argv, const fs::path& work) {
    auto err_path = work / "stderr";
    Fd err(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!err) throw Error("cannot create " + err_path.string() + ": " + errno_string(errno));
    runtime::SpawnOptions options;
    options.argv = std::move(argv);
    options.stdout_fd = -1;
    options.stderr_fd = err.get();
    auto pid = runtime::spawn(options);
    if (!pid) throw Error(pid.error());
    auto status = value_or_throw(runtime::wait_exit(*pid));
    auto text = read_file(err_path, 1 << 20);
    return {status, text ? *text : std::string()};
}

// The tool's own words, one line, for an error message.
std::string first_lines(std::string text, std::size_t max = 3) {
    std::string out;
    std::size_t n = 0, start = 0;
    while (start < text.size() && n < max) {
        auto nl = text.find('\n', start);
        auto line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
        start = nl == std::string::npos ? text.size() : nl + 1;
        if (line.empty()) continue;
        out += (out.empty() ? "" : "; ") + line;
        ++n;
    }
    return out;
}

// debugfs's command parser (ss): a double-quoted word, "" for a quote inside it.
std::string word(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

// An image path ("" = the root) as debugfs names it.
std::string debugfs_path(const std::string& path) {
    return word("/" + path);
}

std::map<std::string, std::string> host_xattrs(const fs::path& p) {
    std::map<std::string, std::string> out;
    std::string names(4096, '\0');
    auto n = ::llistxattr(p.c_str(), names.data(), names.size());
    if (n < 0 && errno == ERANGE) {
        n = ::llistxattr(p.c_str(), nullptr, 0);
        if (n > 0) {
            names.resize(static_cast<std::size_t>(n));
            n = ::llistxattr(p.c_str(), names.data(), names.size());
        }
    }
    if (n <= 0) return out;
    names.resize(static_cast<std::size_t>(n));
    for (std::size_t at = 0; at < names.size();) {
        std::string name(names.c_str() + at);
        at += name.size() + 1;
        if (name.empty()) continue;
        auto size = ::lgetxattr(p.c_str(), name.c_str(), nullptr, 0);
        std::string value(size > 0 ? static_cast<std::size_t>(size) : 0, '\0');
        if (size > 0) size = ::lgetxattr(p.c_str(), name.c_str(), value.data(), value.size());
        if (size >= 0) out[name] = value.substr(0, static_cast<std::size_t>(size));
    }
    return out;
}

std::uint32_t type_bits(FileType t) {
    switch (t) {
    case FileType::file:
    case FileType::hardlink:
        return S_IFREG;
    case FileType::dir:
        return S_IFDIR;
    case FileType::symlink:
        return S_IFLNK;
    case FileType::chardev:
        return S_IFCHR;
    case FileType::blockdev:
        return S_IFBLK;
    case FileType::fifo:
        return S_IFIFO;
    }
    return 0;
}

// The debugfs script that makes the file system's inodes the image's (see ext4.hpp, step 3).
class FixupScript {
  public:
    FixupScript(const fs::path& staging, const fs::path& work, std::int64_t epoch)
        : staging_(staging), work_(work), epoch_seconds_(epoch),
          epoch_("@" + std::to_string(epoch)) {}

    void entry(const std::string& path, const FileInfo& info);
    // lost+found is mke2fs's own: only its times.
    void times_only(const std::string& path) {
        for (const char* f : {"atime", "ctime", "crtime", "mtime"})
            line("sif " + debugfs_path(path) + " " + f + " " + epoch_);
    }
    const std::string& text() const { return text_; }

  private:
    void line(const std::string& s) { text_ += s + "\n"; }
    void xattrs(const std::string& q, const fs::path& host, const FileInfo& info);

    fs::path staging_, work_;
    std::int64_t epoch_seconds_;
    std::string epoch_;
    std::string text_;
    std::size_t values_ = 0;
};

void FixupScript::xattrs(const std::string& q, const fs::path& host, const FileInfo& info) {
    auto have = host.empty() ? std::map<std::string, std::string>() : host_xattrs(host);
    for (const auto& [name, value] : have)
        if (!info.xattrs.contains(name)) line("ea_rm " + q + " " + name);
    for (const auto& [name, value] : info.xattrs) {
        auto it = have.find(name);
        if (it != have.end() && it->second == value) continue;
        auto file = work_ / ("xattr-" + std::to_string(values_++));
        write_synced(file, value);
        line("ea_set -f " + word(file.string()) + " " + q + " " + name);
    }
}

void FixupScript::entry(const std::string& path, const FileInfo& info) {
    if (path.find('\n') != std::string::npos)
        throw Error("the path \"" + path + "\" holds a newline, which debugfs can't be given");
    auto q = debugfs_path(path);
    auto host = path.empty() ? staging_ : staging_ / path;
    struct stat st {};
    bool present = ::lstat(host.c_str(), &st) == 0;
    std::uint32_t want = type_bits(info.type) | info.mode;
    if (!present) {
        // A device node (removed from the staging tree, see make_ext4), or a fifo the applier
        // could not make. debugfs's mknod takes a name in its working directory, not a path.
        auto slash = path.rfind('/');
        std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
        std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
        std::string args;
        if (info.type == FileType::chardev || info.type == FileType::blockdev)
            args = (info.type == FileType::chardev ? " c " : " b ") + std::to_string(info.major) +
                   " " + std::to_string(info.minor);
        else if (info.type == FileType::fifo)
            args = " p";
        else
            throw Error("the staging tree lacks \"" + path + "\" (" + type_name(info.type) + ")");
        line("cd " + debugfs_path(parent));
        line("mknod " + word(name) + args);
        line("cd \"/\"");
    }
    if (!present || (st.st_mode & 0177777) != want) {
        char mode[16];
        std::snprintf(mode, sizeof mode, "0%o", want);
        line("sif " + q + " mode " + mode);
    }
    if (!present || static_cast<std::int64_t>(st.st_uid) != info.uid)
        line("sif " + q + " uid " + std::to_string(info.uid));
    if (!present || static_cast<std::int64_t>(st.st_gid) != info.gid)
        line("sif " + q + " gid " + std::to_string(info.gid));
    xattrs(q, present ? host : fs::path(), info);
    for (const char* f : {"atime", "ctime", "crtime"})
        line("sif " + q + " " + f + " " + epoch_);
    // A directory no layer lists (the root, a foreign layer's parent) has no mtime of its own:
    // the writer made it, so it gets the epoch as lost+found does, not 1970.
    auto mtime = info.implied ? epoch_seconds_ : std::max<std::int64_t>(0, info.mtime);
    line("sif " + q + " mtime @" + std::to_string(mtime));
}

std::uint64_t content_blocks(const ImageFiles& files) {
    std::uint64_t blocks = 0;
    for (const auto& [path, f] : files.files) {
        if (f.type == FileType::file) blocks += blocks_of(f.size);
        if (f.type == FileType::dir) blocks += 1;
        if (f.type == FileType::symlink && f.size >= 60) blocks += 1;
        std::uint64_t x = 0;
        for (const auto& [k, v] : f.xattrs)
            x += k.size() + v.size() + 16;
        if (x > 96) blocks += blocks_of(x);
    }
    // Every entry takes a directory record in its parent: 8 bytes + the name, rounded to 4.
    std::uint64_t dirent_bytes = 0;
    for (const auto& [path, f] : files.files) {
        auto slash = path.rfind('/');
        auto name = slash == std::string::npos ? path.size() : path.size() - slash - 1;
        dirent_bytes += 8 + ((name + 3) & ~std::uint64_t{3});
    }
    return blocks + blocks_of(dirent_bytes);
}

std::uint64_t content_bytes_of(const ImageFiles& files) {
    std::uint64_t bytes = 0;
    for (const auto& [path, f] : files.files)
        if (f.type == FileType::file) bytes += f.size;
    return bytes;
}

// --size in the largest power-of-1024 unit that shows it exactly: "1 MiB", "1 KiB", "1500 bytes"
// (a --size 1K shown in MiB would read 0).
std::string size_text(std::uint64_t bytes) {
    if (bytes > 0 && bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
    if (bytes > 0 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " bytes";
}

// `given` is --size as the user gave it (size is it rounded down to whole blocks).
void check_fits(const ImageFiles& files, std::uint64_t size, std::uint64_t given) {
    // The least a file system of this content takes: its blocks and inode tables. Anything
    // smaller fails for sure; above it mke2fs has the last word.
    std::uint64_t least = content_blocks(files) * block + ext4_inode_count(files) * inode_size;
    if (size < least)
        throw Error("the image's files need at least " +
                    std::to_string((least + (1 << 20) - 1) >> 20) + " MiB, more than --size " +
                    size_text(given));
}

} // namespace

std::uint64_t ext4_inode_count(const ImageFiles& files) {
    std::uint64_t n = files.files.size();
    return std::max<std::uint64_t>(4096, n + n / 4);
}

std::uint64_t default_ext4_size(const ImageFiles& files) {
    std::uint64_t data = content_blocks(files) * block;
    std::uint64_t size = data + data / 5 + ext4_inode_count(files) * inode_size + (64ull << 20);
    return (size + (1ull << 20) - 1) & ~((1ull << 20) - 1);
}

void write_synced(const fs::path& file, std::string_view data) {
    Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw Error("cannot create " + file.string() + ": " + errno_string(errno));
    value_or_throw(write_all(fd.get(), data.data(), data.size()));
    if (::fsync(fd.get()) != 0)
        throw Error("cannot fsync " + file.string() + ": " + errno_string(errno));
}

Ext4Image make_ext4(const oci::Layout& store, const oci::Descriptor& image, const fs::path& out,
                    const fs::path& work, const DiskOptions& options, const StagingVisitor& visit) {
    auto mke2fs = tool("mke2fs");
    auto debugfs = tool("debugfs");
    auto env = runtime::find_program("env");
    if (env.empty()) throw Error("env not found in PATH");
    value_or_throw(check_label(options.label));

    // One pass over each layer: the tree on disk for mke2fs -d, and its metadata (owners,
    // modes, xattrs, devices) for debugfs.
    auto staging = work / "staging";
    fs::create_directory(staging);
    ::chmod(staging.c_str(), 0755);
    auto files = flatten_image_files(store, image, staging);
    std::uint64_t given = options.size ? options.size : default_ext4_size(files);
    std::uint64_t size = given & ~(block - 1);
    check_fits(files, size, given);
    // Device nodes are always made by debugfs (step 3), never copied by mke2fs: whether the
    // applier could make them (root) or not (a user namespace) must not move an inode.
    for (const auto& [path, info] : files.files)
        if (info.type == FileType::chardev || info.type == FileType::blockdev)
            ::unlink((staging / path).c_str());

    std::uint64_t offset = visit ? visit(staging, files, size) : 0;
    // e2fsprogs' unix I/O manager takes "FILE?offset=BYTES" (debugfs) and -E offset= (mke2fs).
    std::string target = offset ? out.string() + "?offset=" + std::to_string(offset) : out.string();

    Ext4Image result;
    result.size = size;
    result.content_bytes = content_bytes_of(files);
    result.files = files.files.size();
    result.uuid = derived_uuid(image.digest, "ext4 uuid");
    result.label = options.label.empty() ? "rootfs" : options.label;
    result.packages = read_packages(staging);

    // e2fsprogs reads E2FSPROGS_FAKE_TIME=0 as unset: an epoch of 0 becomes 1 second.
    auto fake_time = std::to_string(std::max<std::int64_t>(1, files.created));
    auto conf = work / "mke2fs.conf";
    write_synced(conf, mke2fs_conf);
    std::vector<std::string> environment = {"MKE2FS_CONFIG=" + conf.string(),
                                            "E2FSPROGS_FAKE_TIME=" + fake_time, "LC_ALL=C",
                                            "TZ=UTC", "MKE2FS_SYNC=0"};
    std::vector<std::string> argv = {env.string(), "-i"};
    argv.insert(argv.end(), environment.begin(), environment.end());
    auto seed = derived_uuid(image.digest, "ext4 hash_seed");
    std::vector<std::string> mk = {
        mke2fs.string(),
        "-q",
        "-F",
        "-t",
        "ext4",
        "-b",
        std::to_string(block),
        "-I",
        std::to_string(inode_size),
        "-N",
        std::to_string(ext4_inode_count(files)),
        "-m",
        "0",
        "-L",
        result.label,
        "-U",
        result.uuid,
        "-E",
        "hash_seed=" + seed + ",lazy_itable_init=0,lazy_journal_init=0,nodiscard,root_owner=0:0" +
            (offset ? ",offset=" + std::to_string(offset) : ""),
        "-d",
        staging.string(),
        out.string(),
        std::to_string(size / 1024) + "k"};
    auto a = argv;
    a.insert(a.end(), mk.begin(), mk.end());
    auto [status, err] = run_tool(a, work);
    if (status != 0) {
        std::error_code ec;
        if (!offset) fs::remove(out, ec);
        auto msg = first_lines(err);
        if (err.find("Could not allocate") != std::string::npos ||
            err.find("No space left") != std::string::npos)
            throw Error("the image's files don't fit in " + size_text(size) +
                        " (give a larger --size): mke2fs: " + msg);
        throw Error("mke2fs failed (exit " + std::to_string(status) + "): " + msg);
    }

    FixupScript script(staging, work, std::max<std::int64_t>(0, files.created));
    for (const auto& [path, info] : files.files)
        script.entry(path, info);
    if (!files.files.contains("lost+found")) script.times_only("lost+found");
    auto script_path = work / "fixup.debugfs";
    write_synced(script_path, script.text());
    a = argv;
    a.insert(a.end(), {debugfs.string(), "-w", "-f", script_path.string(), target});
    auto [dstatus, derr] = run_tool(a, work);
    // debugfs reports a failing command on stderr and exits 0: any line but its banner fails.
    std::string problems;
    for (std::size_t start = 0; start < derr.size();) {
        auto nl = derr.find('\n', start);
        auto line = derr.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
        start = nl == std::string::npos ? derr.size() : nl + 1;
        if (!line.empty() && !line.starts_with("debugfs 1.")) problems += line + "\n";
    }
    if (dstatus != 0 || !problems.empty())
        throw Error("debugfs failed to set the image's metadata: " +
                    first_lines(problems.empty() ? derr : problems));
    return result;
}

void publish(const fs::path& temp_out, const fs::path& temp_json, const fs::path& file) {
    throw_if_interrupted(); // a build stopped by a signal writes no output
    auto json = fs::path(file.string() + ".json");
    if (::rename(temp_out.c_str(), file.c_str()) != 0)
        throw Error("failed to rename " + temp_out.string() + " to " + file.string() + ": " +
                    errno_string(errno));
    if (::rename(temp_json.c_str(), json.c_str()) != 0) {
        int err = errno;
        ::unlink(file.c_str());
        throw Error("failed to rename " + temp_json.string() + " to " + json.string() + ": " +
                    errno_string(err));
    }
    fsync_dir(fs::absolute(file).parent_path());
}

void export_ext4(const oci::Layout& store, const oci::Descriptor& image, const fs::path& file,
                 const DiskOptions& options) {
    try {
        auto parent = fs::absolute(file).parent_path();
        TempDir temp(parent, std::string(temp_prefix) + "ext4-");
        auto out = temp.path() / "out.ext4";
        auto made = make_ext4(store, image, out, temp.path(), options);
        {
            Fd fd(::open(out.c_str(), O_RDONLY | O_CLOEXEC));
            if (!fd || ::fsync(fd.get()) != 0)
                throw Error("cannot fsync " + out.string() + ": " + errno_string(errno));
        }
        DiskManifest m;
        m.image = image.digest;
        m.format = "ext4";
        m.file = file.filename().string();
        m.sha256 = sha256_of_file(out);
        m.size = made.size;
        m.content_bytes = made.content_bytes;
        m.files = made.files;
        m.uuid = made.uuid;
        m.label = made.label;
        m.packages = made.packages;
        auto json = temp.path() / "out.json";
        write_synced(json, to_json(m));
        publish(out, json, file);
    } catch (const Error& e) {
        throw Error("cannot export to ext4:" + file.string() + ": " + e.what());
    }
}

} // namespace factory::exporter
