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

} // namespace factory::cli
