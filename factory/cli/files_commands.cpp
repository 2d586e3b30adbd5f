#include "factory/cli/files_commands.hpp"

#include <cstdio>

#include "factory/cli/image_source.hpp"
#include "factory/export/image_diff.hpp"
#include "factory/export/image_files.hpp"
#include "factory/oci/json.hpp"
#include "factory/util/error.hpp"
#include "factory/util/progress.hpp"

namespace factory::cli {

namespace {

using exporter::FileInfo;
using exporter::FileType;

oci::Layout open_or_create_store(const std::filesystem::path& root) {
    if (std::filesystem::exists(root / "oci-layout")) return oci::Layout::open(root);
    return oci::Layout::create(root);
}

exporter::ImageFiles files_of(const std::string& spec, oci::Layout& store,
                              const builder::BuildOptions& options) {
    auto source = resolve_image_source(spec, store, options);
    return exporter::read_image_files(store, source.manifest);
}

std::string mode_string(std::uint32_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", mode);
    return buf;
}

std::string short_digest(const std::string& d) {
    return d.substr(0, 19);
}

// JSON of one entry, fields in a fixed order.
oci::Json entry_json(const std::string& path, const FileInfo& f,
                     const std::vector<exporter::LayerInfo>& layers) {
    oci::Json j;
    j["path"] = "/" + path;
    j["type"] = exporter::type_name(f.type);
    j["mode"] = mode_string(f.mode);
    j["uid"] = f.uid;
    j["gid"] = f.gid;
    j["size"] = f.size;
    if (!f.link.empty()) j["link"] = f.link;
    if (!f.sha256.empty()) j["sha256"] = f.sha256;
    if (f.type == FileType::chardev || f.type == FileType::blockdev)
        j["device"] = std::to_string(f.major) + ":" + std::to_string(f.minor);
    if (!f.xattrs.empty()) {
        oci::Json x = oci::Json::object();
        for (const auto& [k, v] : f.xattrs)
            x[k] = v.size();
        j["xattrs"] = x; // name → value bytes
    }
    j["layer"] = f.layer;
    if (f.layer < layers.size()) j["layer_digest"] = layers[f.layer].digest;
    return j;
}

std::string entry_line(const std::string& path, const FileInfo& f) {
    std::string line = std::string(exporter::type_name(f.type)) + " " + mode_string(f.mode) + " " +
                       std::to_string(f.uid) + ":" + std::to_string(f.gid) + " " +
                       std::to_string(f.size) + " /" + path;
    if (f.type == FileType::symlink) line += " -> " + f.link;
    if (f.type == FileType::hardlink) line += " => /" + f.link;
    return line;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : sep) + s;
    return out;
}

// "mode 0644→0755, owner 0:0→1000:1000, content": the old and new values where short.
std::string what_line(const exporter::FileChange& c) {
    std::vector<std::string> parts;
    for (const auto& w : c.what) {
        if (w == "mode")
            parts.push_back("mode " + mode_string(c.a->mode) + "→" + mode_string(c.b->mode));
        else if (w == "owner")
            parts.push_back("owner " + std::to_string(c.a->uid) + ":" + std::to_string(c.a->gid) +
                            "→" + std::to_string(c.b->uid) + ":" + std::to_string(c.b->gid));
        else if (w == "link")
            parts.push_back("link " + c.a->link + "→" + c.b->link);
        else if (w == "type")
            parts.push_back(std::string("type ") + exporter::type_name(c.a->type) + "→" +
                            exporter::type_name(c.b->type));
        else if (w == "content")
            parts.push_back("content (" + std::to_string(c.a->size) + "→" +
                            std::to_string(c.b->size) + " bytes)");
        else
            parts.push_back(w);
    }
    return join(parts, ", ");
}

void print_diff_json(const exporter::ImageDiff& d, const exporter::ImageFiles& b) {
    oci::Json j;
    j["a"] = d.a;
    j["b"] = d.b;
    j["changes"] = oci::Json::array();
    for (const auto& c : d.changes) {
        oci::Json cj;
        cj["path"] = "/" + c.path;
        cj["change"] = exporter::kind_name(c.kind);
        if (c.kind == exporter::ChangeKind::changed) cj["what"] = c.what;
        if (c.layer) {
            cj["layer"] = *c.layer;
            cj["layer_digest"] = b.layers[*c.layer].digest;
        } else {
            cj["layer"] = nullptr;
        }
        if (c.a) cj["a"] = entry_json(c.path, *c.a, {});
        if (c.b) cj["b"] = entry_json(c.path, *c.b, b.layers);
        j["changes"].push_back(cj);
    }
    j["layers"] = oci::Json::array();
    for (const auto& l : d.layers) {
        oci::Json lj;
        lj["index"] = l.index;
        lj["digest"] = l.info.digest;
        lj["size"] = l.info.size;
        lj["created_by"] = l.info.created_by;
        lj["shared"] = l.shared;
        lj["added"] = l.added;
        lj["changed"] = l.changed;
        lj["removed"] = l.removed;
        lj["bytes"] = l.bytes;
        j["layers"].push_back(lj);
    }
    std::printf("%s\n", j.dump(2).c_str());
}

void print_diff_text(const exporter::ImageDiff& d) {
    std::printf("A: %s\nB: %s\n", d.a.c_str(), d.b.c_str());
    if (d.changes.empty()) std::printf("no file differs\n");
    for (const auto& c : d.changes) {
        std::string layer = c.layer ? "layer " + std::to_string(*c.layer) : "layer -";
        const char* mark = c.kind == exporter::ChangeKind::added     ? "+"
                           : c.kind == exporter::ChangeKind::removed ? "-"
                                                                     : "~";
        std::string detail = c.kind == exporter::ChangeKind::changed ? "  " + what_line(c)
                             : c.kind == exporter::ChangeKind::added
                                 ? "  " + std::string(exporter::type_name(c.b->type)) + " " +
                                       mode_string(c.b->mode) + " " + std::to_string(c.b->size)
                                 : "";
        std::printf("%s /%s  [%s]%s\n", mark, c.path.c_str(), layer.c_str(), detail.c_str());
    }
    std::printf("Layers of B:\n");
    for (const auto& l : d.layers)
        std::printf("  %zu %s %9s %s +%llu ~%llu -%llu %s  %s\n", l.index,
                    short_digest(l.info.digest).c_str(), human_size(l.info.size).c_str(),
                    l.shared ? "same " : "new  ", static_cast<unsigned long long>(l.added),
                    static_cast<unsigned long long>(l.changed),
                    static_cast<unsigned long long>(l.removed), human_size(l.bytes).c_str(),
                    l.info.created_by.c_str());
}

} // namespace

int run_inspect_files(const FilesArgs& args, const builder::BuildOptions& options) {
    auto store = open_or_create_store(options.store_root);
    auto files = files_of(args.ref, store, options);
    if (args.json) {
        oci::Json j;
        j["digest"] = files.digest;
        j["files"] = oci::Json::array();
        for (const auto& [path, f] : files.files)
            j["files"].push_back(entry_json(path, f, files.layers));
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    for (const auto& [path, f] : files.files) {
        std::string layer =
            f.layer < files.layers.size()
                ? std::to_string(f.layer) + " " + short_digest(files.layers[f.layer].digest)
                : "-";
        std::printf("%s  [layer %s]\n", entry_line(path, f).c_str(), layer.c_str());
    }
    return 0;
}

int run_diff(const DiffArgs& args, const builder::BuildOptions& options) {
    auto store = open_or_create_store(options.store_root);
    auto a = files_of(args.a, store, options);
    auto b = files_of(args.b, store, options);
    auto d = exporter::diff_images(a, b);
    if (args.json)
        print_diff_json(d, b);
    else
        print_diff_text(d);
    return 0;
}

} // namespace factory::cli
