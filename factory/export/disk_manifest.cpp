#include "factory/export/disk_manifest.hpp"

#include <fcntl.h>

#include <algorithm>

#include "factory/oci/json.hpp"
#include "factory/runtime/in_root.hpp"
#include "factory/util/error.hpp"
#include "factory/util/files.hpp"
#include "factory/util/sha256.hpp"

namespace factory::exporter {

namespace {

// dpkg's deb822 paragraphs: "Field: value", continuation lines start with a blank.
void flush(Package& p, bool installed, std::vector<Package>& out) {
    if (installed && !p.name.empty()) out.push_back(p);
    p = Package{};
}

} // namespace

std::vector<Package> parse_dpkg_status(std::string_view text) {
    std::vector<Package> out;
    Package p;
    bool installed = false;
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (line.empty()) {
            flush(p, installed, out);
            installed = false;
            continue;
        }
        if (line.front() == ' ' || line.front() == '\t') continue;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        auto key = line.substr(0, colon);
        auto value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\r'))
            value.remove_suffix(1);
        if (key == "Package")
            p.name = value;
        else if (key == "Version")
            p.version = value;
        else if (key == "Architecture")
            p.architecture = value;
        else if (key == "Status")
            installed = value.ends_with(" installed");
    }
    flush(p, installed, out);
    std::sort(out.begin(), out.end(), [](const Package& a, const Package& b) {
        return a.name != b.name ? a.name < b.name : a.architecture < b.architecture;
    });
    return out;
}

std::optional<std::vector<Package>> read_packages(const std::filesystem::path& root) {
    Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) return std::nullopt;
    auto dir = runtime::open_dir_in_root(root_fd.get(), "var/lib/dpkg",
                                         runtime::Resolver::automatic, false);
    if (!dir) return std::nullopt;
    Fd fd(::openat((*dir).get(), "status", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string text;
    char buf[1 << 16];
    for (;;) {
        auto n = read_some(fd.get(), buf, sizeof buf);
        if (!n || *n == 0) break;
        text.append(buf, *n);
        if (text.size() > (256u << 20)) break; // a status file is a few MiB
    }
    return parse_dpkg_status(text);
}

std::string to_json(const DiskManifest& m) {
    oci::Json j;
    j["image"] = m.image;
    j["format"] = m.format;
    j["file"] = m.file;
    j["sha256"] = m.sha256;
    j["size"] = m.size;
    j["content_bytes"] = m.content_bytes;
    j["files"] = m.files;
    j["uuid"] = m.uuid;
    if (!m.label.empty()) j["label"] = m.label;
    j["partitions"] = oci::Json::array();
    for (const auto& p : m.partitions) {
        oci::Json pj;
        pj["name"] = p.name;
        pj["type"] = p.type_guid;
        pj["uuid"] = p.uuid;
        pj["filesystem"] = p.filesystem;
        pj["fs_uuid"] = p.fs_uuid;
        pj["start"] = p.start;
        pj["size"] = p.size;
        j["partitions"].push_back(pj);
    }
    if (m.packages) {
        j["packages"] = oci::Json::array();
        for (const auto& p : *m.packages)
            j["packages"].push_back(
                {{"name", p.name}, {"version", p.version}, {"architecture", p.architecture}});
    } else {
        j["packages"] = nullptr;
    }
    return j.dump(2) + "\n";
}

std::string sha256_of_file(const std::filesystem::path& file) {
    return value_or_throw(sha256_file(file.string()));
}

} // namespace factory::exporter
