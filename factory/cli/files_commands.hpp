#pragma once
// `factory inspect REF --files` and `factory diff A B`: an image's flattened tree, and what
// changed between two images (docs/cli.md). The reading and comparing is export/'s
// (image_files.hpp, image_diff.hpp); this file resolves the images and prints.

#include <string>

#include "factory/builder/builder.hpp"

namespace factory::cli {

struct FilesArgs {
    std::string ref;
    bool json = false;
};
// One line per path: TYPE MODE UID:GID SIZE LAYER PATH [-> TARGET]; --json: an array.
int run_inspect_files(const FilesArgs& args, const builder::BuildOptions& options);

struct DiffArgs {
    std::string a, b;
    bool json = false;
};
// Changed paths (+ added, - removed, ~ changed: what) with the layer of B that brought each,
// then a summary per layer of B. Exit 0 whether or not the images differ.
int run_diff(const DiffArgs& args, const builder::BuildOptions& options);

} // namespace factory::cli
