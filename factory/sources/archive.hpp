#pragma once
// An archive (tar, tar.gz, tar.zst, zip) as the entries of a layer, for a download's `extract`.
// A tar is read through runtime::TarReader, the one layer reader (decompressed in-process,
// counted and capped, with its words for every error), a zip seekable (its modes are in the
// central directory at its end); both by libarchive's reader only — never its disk writer:
// each file's content is written to a file of its own in a scratch directory, named by a
// counter, so no path of the archive is ever used on the host. Paths are normalized ("./", leading
// "/" dropped) and must be layer paths: a ".." component is an error naming the entry, so nothing
// can land outside `dest`.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "factory/layer/entry.hpp"
#include "factory/runtime/layer_stream.hpp"
#include "factory/util/error.hpp"

namespace factory::sources {

namespace fs = std::filesystem;

struct ArchiveLimits {
    std::uint64_t max_entries = 1'000'000;
    runtime::StreamLimits stream; // uncompressed bytes, compression ratio
};

// The archive's entries under `dest` (relative, "" = the root), parents included as 0755
// directories, owners 0:0, permission bits as the archive has them (setuid, setgid and sticky
// dropped), symlinks and hardlinks kept (a hardlink's target must be an earlier file of the
// archive). Later entries of the same path replace earlier ones, as tar does. Devices, FIFOs
// and sockets are errors, and so is an entry under a symlink of the archive (extracting never
// follows one). Contents go to files in `content_dir` (an existing directory). Errors start
// with `name` (a download's URL), the archive's file name when it is empty.
Result<std::vector<layer::Entry>> archive_entries(const fs::path& archive, const std::string& dest,
                                                  const fs::path& content_dir,
                                                  const ArchiveLimits& limits = {},
                                                  const std::string& name = "");

} // namespace factory::sources
