#pragma once
// The validated recipe model: what a recipe file says, with every string already
// ${ARG}-expanded and every value type-checked. Produced by recipe::load (parser.hpp);
// consumed by build/. Nothing here touches the file system beyond the recipe itself.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace factory::recipe {

// Where a value came from, for errors: "recipes/hello.toml:12:5".
struct Location {
    std::string file;
    int line = 0;
    int column = 0;
    std::string str() const; // "file:line:col" (or just "file" when line == 0)
};

enum class Compression { gzip, zstd };

struct Base {
    enum class Kind {
        scratch,     // "scratch"
        oci_layout,  // "oci:DIR[:TAG]"        path = DIR (absolute), tag (may be empty)
        oci_archive, // "oci-archive:FILE[:TAG]" path = FILE (absolute), tag
        stage,       // "stage:NAME" or { stage = "NAME" }: another stage's result
    };
    Kind kind = Kind::scratch;
    std::filesystem::path path;
    std::string tag;
    std::string stage;
    Location where;
};

// One source → destination of a copy step.
struct CopyItem {
    std::vector<std::string> src; // relative paths or globs (*, ?, [..], **) in the source tree
    std::string dest;             // absolute path in the image; a trailing '/' means a directory
    std::optional<unsigned> mode; // overrides the mode of every copied file (and directory)
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    std::string from_stage; // copy from another stage's rootfs instead of the context
    std::string context;    // a named context from [contexts]; empty = the recipe's context
    Location where;
};

enum class StepKind { copy };

struct Step {
    StepKind kind = StepKind::copy;
    std::vector<CopyItem> copy;
    Location where;
};

// [config]: the runtime configuration of the image (image-spec config.md).
struct ImageConfig {
    std::vector<std::pair<std::string, std::string>> env; // in recipe order
    std::optional<std::vector<std::string>> entrypoint;
    std::optional<std::vector<std::string>> cmd;
    std::string workdir;
    std::string user;
    std::map<std::string, std::string> labels;
    std::vector<std::string> exposed_ports; // "80/tcp", "53/udp" (a bare "80" becomes "80/tcp")
    std::vector<std::string> volumes;       // absolute paths
    std::string stop_signal;
};

struct Stage {
    std::string name; // "main" for the top-level [base]/[[step]]
    Base base;
    std::vector<Step> steps;
    ImageConfig config; // applied on top of the base's config
    bool has_config = false;
    Location where;
};

struct Recipe {
    std::filesystem::path file;    // absolute path of the recipe
    std::filesystem::path context; // absolute; [image] context, default: the recipe's directory
    std::string name;              // [image] name, e.g. "hello" or "example.com/team/hello"
    std::vector<std::string> tags; // default ["latest"]
    std::int64_t epoch = 0;        // SOURCE_DATE_EPOCH overrides [image] epoch
    Compression compression = Compression::gzip;
    std::string architecture; // default: the host's, in GOARCH spelling ("amd64")
    std::string os = "linux";
    std::string variant;     // "v7" for "linux/arm/v7"; empty when the platform has none
    std::string ignore_file; // relative to context; default ".factoryignore" if it exists
    std::map<std::string, std::string> annotations;
    std::map<std::string, std::filesystem::path> contexts; // named host directories
    std::map<std::string, std::string> args;               // after --arg overrides
    std::vector<Stage> stages;                             // in dependency order
    std::string output_stage;                              // [image] stage, default: the last
};

} // namespace factory::recipe
