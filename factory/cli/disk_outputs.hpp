#pragma once
// The options of the disk destinations (ext4:FILE, raw:FILE) of `factory build -o` and
// `factory export`: --size and --label (docs/cli.md "Destinations").

#include <filesystem>
#include <string>
#include <vector>

#include "factory/export/target.hpp"

namespace factory::cli {

struct DiskArgs {
    std::string size;  // --size, "" = automatic
    std::string label; // --label
};

// Parses --size and --label. Throws a usage Error naming the option.
exporter::DiskOptions parse_disk_options(const DiskArgs& args);

} // namespace factory::cli
