#pragma once
// A tree's blobs read from `git cat-file --batch`, one process per repository, while the layer
// is written: the contents of its file entries (layer/content_source.hpp), so inflating them
// overlaps tarring and compressing instead of coming before. Each blob is also kept as a file
// named by its id in a content directory (git_mirror.hpp TreeOptions::content_dir), renamed
// into place once complete, so the next build of a commit that shares it reads it from there.
//
//   add(mirror, path, id)…   then, from the layer writer's thread, in canonical order:
//   open(entry) read()…      a thread per repository runs cat-file on that repository's ids
//                            in the same order and hands their bytes over (8 MiB in flight)
//
// Errors (cat-file failing, a missing object, a content file that can't be written) come out of
// open() or read(), naming the repository's URL. Destroying the stream stops its processes.

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "factory/layer/content_source.hpp"
#include "factory/sources/command.hpp"

namespace factory::sources {

namespace fs = std::filesystem;

// Writes blobs `ids` (one a line, each a 40-hex id) of the repository `cat_file` runs in
// (its argv: git cat-file --batch, its cwd the repository) into files of `content_dir` named
// by id. Errors: git failing ("git cat-file failed: LAST LINE"), a file that can't be written.
Result<void> extract_blobs(const Command& cat_file, const std::string& ids,
                           const fs::path& content_dir);

class GitBlobStream final : public layer::ContentSource {
  public:
    explicit GitBlobStream(fs::path content_dir);
    ~GitBlobStream() override;
    GitBlobStream(const GitBlobStream&) = delete;
    GitBlobStream& operator=(const GitBlobStream&) = delete;

    // The content of the entry at `path` is blob `id` of the repository `cat_file` runs in
    // (argv git cat-file --batch, env, cwd); `url` names it in errors. All before the first
    // open().
    void add(const Command& cat_file, const std::string& url, std::string path, std::string id);
    bool empty() const noexcept { return where_.empty(); }

    bool provides(const layer::Entry& entry) const override;
    Result<void> open(const layer::Entry& entry) override;
    Result<std::size_t> read(char* buf, std::size_t size) override;

  private:
    struct Repo;
    void start();

    fs::path content_dir_;
    std::vector<std::unique_ptr<Repo>> repos_;
    // path → (repository, position in its request order once started)
    std::unordered_map<std::string, std::pair<std::size_t, std::size_t>> where_;
    bool started_ = false;
    Repo* current_ = nullptr;
    std::size_t current_seq_ = 0;
};

} // namespace factory::sources
