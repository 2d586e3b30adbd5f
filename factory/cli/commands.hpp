#pragma once
// The commands that only read the store, and what the commands share.

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "factory/cli/disk_outputs.hpp"

namespace factory::cli {

// --arg NAME=VALUE values → a map; throws a usage Error naming a malformed one.
std::map<std::string, std::string> parse_args(const std::vector<std::string>& raw);

// --secret id=ID,src=FILE | id=ID,env=VAR → (id, value). The value is read now and kept in
// memory only; it never reaches a log, a key or the store. Throws a usage Error.
std::pair<std::string, std::string> parse_secret(const std::string& spec);

struct ImagesArgs {
    bool json = false;
};
// `factory images`: NAME:TAG, digest and size of every ref in the store.
int run_images(const ImagesArgs& args, const std::filesystem::path& store_root);

struct InspectArgs {
    std::string ref;
    bool json = false;
};
// `factory inspect REF`: the config and layers of one image.
int run_inspect(const InspectArgs& args, const std::filesystem::path& store_root);

struct ExportArgs {
    std::string ref;
    std::vector<std::string> outputs;
    DiskArgs disk; // --size, --label for ext4: and raw:
};
struct RegistryFlags;
// `factory export REF DEST...`: an image of the store to oci:, oci-archive:, docker-archive:,
// rootfs:, rootfs-tar: or docker:// (pushed) destinations.
int run_export(ExportArgs args, const std::filesystem::path& store_root,
               const RegistryFlags& registry_flags);

} // namespace factory::cli
