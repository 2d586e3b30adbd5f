#include "factory/export/raw.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "factory/export/disk_ids.hpp"
#include "factory/export/ext4.hpp"
#include "factory/runtime/process.hpp"
#include "factory/util/files.hpp"

namespace factory::exporter {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;
constexpr std::uint64_t sector = 512;
// UEFI spec 5.3.3; the Discoverable Partitions Specification for root on x86-64.
constexpr const char* esp_type = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
constexpr const char* root_type = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
constexpr const char* systemd_boot = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

std::uint64_t round_up(std::uint64_t n, std::uint64_t to) {
    return (n + to - 1) / to * to;
}

fs::path tool(const std::string& name, const char* package) {
    auto path = runtime::find_program(name);
    if (path.empty())
        throw Error(name + " not found in PATH, /usr/sbin or /sbin (install " + package + ")");
    return path;
}

// What the ESP gets from the image: the bootloader, the kernel and its initramfs.
struct BootFiles {
    fs::path loader, kernel, initrd; // copies in the work directory
    std::string kernel_name;         // "vmlinuz-6.1.0-18-amd64"
};

// Copies `rel` of the staging tree (a regular file, symlinks resolved inside the tree) to dest.
bool copy_out(const fs::path& staging, std::string rel, const fs::path& dest) {
    for (int hops = 0; hops < 16; ++hops) {
        auto p = staging / rel;
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0) return false;
        if (S_ISLNK(st.st_mode)) {
            auto target = fs::read_symlink(p).string();
            rel = target.starts_with("/") ? target.substr(1)
                                          : (fs::path(rel).parent_path() / target).string();
            rel = fs::path(rel).lexically_normal().string();
            if (rel.starts_with("..")) return false;
            continue;
        }
        if (!S_ISREG(st.st_mode)) return false;
        std::error_code ec;
        fs::copy_file(p, dest, fs::copy_options::overwrite_existing, ec);
        return !ec;
    }
    return false;
}

// The newest kernel of boot/ (names sorted: the last vmlinuz-*) and its initrd.img-*.
std::optional<BootFiles> find_boot(const fs::path& staging, const fs::path& work) {
    std::vector<std::string> kernels;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(staging / "boot", ec))
        if (e.path().filename().string().starts_with("vmlinuz-"))
            kernels.push_back(e.path().filename().string());
    if (kernels.empty()) return std::nullopt;
    std::sort(kernels.begin(), kernels.end());
    BootFiles b;
    b.kernel_name = kernels.back();
    b.loader = work / "BOOTX64.EFI";
    b.kernel = work / "vmlinuz";
    b.initrd = work / "initrd.img";
    if (!copy_out(staging, systemd_boot, b.loader))
        throw Error("the image has a kernel (/boot/" + b.kernel_name + ") but no /" +
                    std::string(systemd_boot) + " (install systemd-boot in the image)");
    copy_out(staging, "boot/" + b.kernel_name, b.kernel);
    auto version = b.kernel_name.substr(8);
    if (!copy_out(staging, "boot/initrd.img-" + version, b.initrd)) b.initrd.clear();
    return b;
}

void run_checked(std::vector<std::string> argv, const fs::path& work, int stdin_fd = -1) {
    auto err_path = work / "stderr";
    Fd err(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!err) throw Error("cannot create " + err_path.string() + ": " + errno_string(errno));
    runtime::SpawnOptions options;
    options.argv = argv;
    options.stdin_fd = stdin_fd;
    options.stdout_fd = -1;
    options.stderr_fd = err.get();
    auto pid = runtime::spawn(options);
    if (!pid) throw Error(pid.error());
    auto status = value_or_throw(runtime::wait_exit(*pid));
    if (status != 0) {
        auto text = read_file(err_path, 4096);
        // argv: env, its settings, then the tool.
        auto tool_at = std::find_if(argv.begin() + 1, argv.end(),
                                    [](const std::string& a) { return a.starts_with("/"); });
        std::string name = tool_at == argv.end() ? argv[0] : fs::path(*tool_at).filename().string();
        throw Error(name + " failed (exit " + std::to_string(status) +
                    "): " + (text ? *text : std::string()));
    }
}

// The environment every tool runs in: no locale, no time zone, the image's epoch.
std::vector<std::string> env_prefix(std::int64_t epoch) {
    auto env = runtime::find_program("env");
    if (env.empty()) throw Error("env not found in PATH");
    return {env.string(),
            "-i",
            "LC_ALL=C",
            "TZ=UTC",
            "SOURCE_DATE_EPOCH=" + std::to_string(epoch),
            "MTOOLS_SKIP_CHECK=1"};
}

std::vector<std::string> with(std::vector<std::string> prefix,
                              std::initializer_list<std::string> args) {
    prefix.insert(prefix.end(), args);
    return prefix;
}

// The FAT volume id as mkfs.vfat takes it (8 hex digits) and as blkid shows it (XXXX-XXXX).
std::string hex8(std::uint32_t v) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08X", v);
    return buf;
}

struct Esp {
    fs::path file;
    std::uint64_t size = 0;
    std::string volume_id; // "XXXX-XXXX"
};

Esp make_esp(const BootFiles& boot, const std::string& root_partuuid, const std::string& digest,
             std::int64_t epoch, const fs::path& work) {
    auto mkfs = tool("mkfs.vfat", "dosfstools");
    auto mmd = tool("mmd", "mtools");
    auto mcopy = tool("mcopy", "mtools");
    auto env = env_prefix(epoch);
    // The loader entry (systemd-boot's Boot Loader Specification type 1).
    auto entry = work / "factory.conf";
    std::string options =
        "root=PARTUUID=" + root_partuuid + " rw console=ttyS0,115200 console=tty0";
    write_synced(entry, "title factory image " + digest.substr(0, 19) + "\nlinux /" +
                            boot.kernel_name + "\n" +
                            (boot.initrd.empty() ? "" : "initrd /initrd.img\n") + "options " +
                            options + "\n");
    auto loader_conf = work / "loader.conf";
    write_synced(loader_conf, "default factory.conf\ntimeout 0\n");
    std::uint64_t content = 0;
    for (const auto& f : {boot.loader, boot.kernel, boot.initrd})
        if (!f.empty()) content += fs::file_size(f);
    Esp esp;
    esp.file = work / "esp.img";
    esp.size = std::max<std::uint64_t>(64 * MiB, round_up(content * 2 + 16 * MiB, MiB));
    auto id = derived_u32(digest, "esp volume id");
    esp.volume_id = hex8(id).substr(0, 4) + "-" + hex8(id).substr(4);
    // mtools takes each file's mtime (-m): the epoch, not the export's time.
    for (const auto& f : {boot.loader, boot.kernel, boot.initrd, entry, loader_conf}) {
        if (f.empty()) continue;
        timespec ts[2] = {{epoch, 0}, {epoch, 0}};
        ::utimensat(AT_FDCWD, f.c_str(), ts, 0);
    }
    run_checked(with(env, {mkfs.string(), "--invariant", "-i", hex8(id), "-n", "ESP", "-F", "32",
                           "-C", esp.file.string(), std::to_string(esp.size / 1024)}),
                work);
    auto img = esp.file.string();
    run_checked(
        with(env, {mmd.string(), "-i", img, "::EFI", "::EFI/BOOT", "::loader", "::loader/entries"}),
        work);
    auto put = [&](const fs::path& from, const std::string& to) {
        run_checked(with(env, {mcopy.string(), "-m", "-i", img, from.string(), "::" + to}), work);
    };
    put(boot.loader, "EFI/BOOT/BOOTX64.EFI");
    put(loader_conf, "loader/loader.conf");
    put(entry, "loader/entries/factory.conf");
    put(boot.kernel, boot.kernel_name);
    if (!boot.initrd.empty()) put(boot.initrd, "initrd.img");
    return esp;
}

// Copies `from` into `out` at `offset`, leaving holes where `from` reads zeros.
void place(int out, const fs::path& from, std::uint64_t offset) {
    Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) throw Error("cannot open " + from.string() + ": " + errno_string(errno));
    std::vector<char> buf(1 << 20);
    for (std::uint64_t at = 0;;) {
        auto n = value_or_throw(read_some(in.get(), buf.data(), buf.size()));
        if (n == 0) break;
        bool zero = std::all_of(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n),
                                [](char c) { return c == 0; });
        for (std::size_t done = 0; !zero && done < n;) {
            auto w =
                ::pwrite(out, buf.data() + done, n - done, static_cast<off_t>(offset + at + done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) throw Error("cannot write the disk image: " + errno_string(errno));
            done += static_cast<std::size_t>(w);
        }
        at += n;
    }
}

} // namespace

void export_raw(const oci::Layout& store, const oci::Descriptor& image, const fs::path& file,
                const DiskOptions& options) {
    try {
        auto sfdisk = tool("sfdisk", "fdisk");
        auto parent = fs::absolute(file).parent_path();
        TempDir temp(parent, std::string(temp_prefix) + "raw-");
        auto work = temp.path();
        auto disk = work / "disk.img";
        const auto& d = image.digest;
        auto root_partuuid = derived_uuid(d, "gpt root partition");
        std::int64_t epoch = 0;
        std::vector<Partition> parts;
        std::uint64_t disk_size = 0;
        // Once the tree is staged: the ESP, the GPT around the root partition, and the ESP in
        // place; make_ext4 then writes the file system straight into its partition.
        auto made = make_ext4(
            store, image, disk, work, options,
            [&](const fs::path& staging, const ImageFiles& files, std::uint64_t fs_size) {
                epoch = std::max<std::int64_t>(0, files.created);
                auto boot = find_boot(staging, work);
                std::optional<Esp> esp;
                if (boot) esp = make_esp(*boot, root_partuuid, d, epoch, work);
                // Layout: 1 MiB for the GPT, the ESP, the root, 1 MiB for the backup GPT.
                std::uint64_t at = MiB;
                if (esp) {
                    parts.push_back({"esp", esp_type, derived_uuid(d, "gpt esp partition"),
                                     esp->volume_id, at, esp->size, "vfat"});
                    at += esp->size;
                }
                parts.push_back(
                    {"root", root_type, root_partuuid, "", at, round_up(fs_size, MiB), "ext4"});
                at += parts.back().size;
                disk_size = at + MiB;
                Fd fd(::open(disk.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
                if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(disk_size)) != 0)
                    throw Error("cannot create " + disk.string() + ": " + errno_string(errno));
                std::string script = "label: gpt\nlabel-id: " + derived_uuid(d, "gpt disk") +
                                     "\nunit: sectors\nfirst-lba: 2048\nsector-size: 512\n\n";
                for (const auto& p : parts)
                    script += "start=" + std::to_string(p.start / sector) +
                              ", size=" + std::to_string(p.size / sector) +
                              ", type=" + p.type_guid + ", uuid=" + p.uuid + ", name=\"" + p.name +
                              "\"\n";
                auto script_path = work / "gpt.sfdisk";
                write_synced(script_path, script);
                Fd in(::open(script_path.c_str(), O_RDONLY | O_CLOEXEC));
                run_checked(
                    with(env_prefix(epoch), {sfdisk.string(), "--quiet", "--no-reread",
                                             "--no-tell-kernel", "--wipe", "never", disk.string()}),
                    work, in.get());
                if (esp) place(fd.get(), esp->file, parts.front().start);
                return parts.back().start;
            });
        parts.back().fs_uuid = made.uuid;
        {
            Fd out(::open(disk.c_str(), O_RDWR | O_CLOEXEC));
            if (!out || ::fsync(out.get()) != 0)
                throw Error("cannot fsync " + disk.string() + ": " + errno_string(errno));
        }
        DiskManifest m;
        m.image = d;
        m.format = "raw";
        m.file = file.filename().string();
        m.sha256 = sha256_of_file(disk);
        m.size = disk_size;
        m.content_bytes = made.content_bytes;
        m.files = made.files;
        m.uuid = derived_uuid(d, "gpt disk");
        m.label = made.label;
        m.partitions = parts;
        m.packages = made.packages;
        auto json = work / "disk.json";
        write_synced(json, to_json(m));
        publish(disk, json, file);
    } catch (const Error& e) {
        throw Error("cannot export to raw:" + file.string() + ": " + e.what());
    }
}

} // namespace factory::exporter
