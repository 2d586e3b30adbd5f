#pragma once
// The disk destinations (ext4:FILE, raw:FILE) of `factory build -o` and `factory export`, with
// their options --size and --label (docs/cli.md "Destinations").

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

// Moves the ext4: and raw: specs out of `outputs` (build writes them itself, after the build,
// with the disk options), checking that each parses. Throws a usage Error for a bad one.
std::vector<std::string> take_disk_outputs(std::vector<std::string>& outputs);

enum class Announce { no, yes };

// Writes the image `digest` of the store to each disk spec; Announce::yes prints "DEST DIGEST"
// for each. Throws Error.
void write_disk_outputs(const std::filesystem::path& store_root, const std::string& digest,
                        const std::string& name, const std::vector<std::string>& specs,
                        const exporter::DiskOptions& options, Announce announce);

} // namespace factory::cli
