#include "factory/cli/disk_outputs.hpp"

#include <cstdio>

#include "factory/export/export.hpp"
#include "factory/oci/layout.hpp"
#include "factory/util/error.hpp"

namespace factory::cli {

exporter::DiskOptions parse_disk_options(const DiskArgs& args) {
    exporter::DiskOptions options;
    if (!args.size.empty()) {
        auto size = exporter::parse_size(args.size);
        if (!size) throw usage_error("--size: " + size.error());
        options.size = *size;
    }
    if (auto ok = exporter::check_label(args.label); !ok) throw usage_error(ok.error());
    options.label = args.label;
    return options;
}

std::vector<std::string> take_disk_outputs(std::vector<std::string>& outputs) {
    std::vector<std::string> disks, rest;
    for (auto& spec : outputs) {
        auto t = exporter::parse_target(spec);
        if (!t) throw usage_error("-o " + spec + ": " + t.error());
        bool disk = t->format == exporter::Format::ext4 || t->format == exporter::Format::raw;
        (disk ? disks : rest).push_back(std::move(spec));
    }
    outputs = std::move(rest);
    return disks;
}

void write_disk_outputs(const std::filesystem::path& store_root, const std::string& digest,
                        const std::string& name, const std::vector<std::string>& specs,
                        const exporter::DiskOptions& options, Announce announce) {
    if (specs.empty()) return;
    auto store = oci::Layout::open(store_root);
    auto desc = store.resolve(digest);
    if (!desc) throw Error("no image '" + digest + "' in the store " + store_root.string());
    for (const auto& spec : specs) {
        auto t = value_or_throw(exporter::parse_target(spec), ExitCode::usage);
        t.disk = options;
        exporter::export_image(store, *desc, t, name);
        if (announce == Announce::yes)
            std::printf("%s %s\n", exporter::to_string(t).c_str(), digest.c_str());
    }
}

} // namespace factory::cli
