#include "factory/sources/git_blob_stream.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "factory/sources/git_mirror.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

namespace factory::sources {

namespace {

// At most this many content bytes of one repository wait for the layer writer.
constexpr std::size_t max_queued = 8u << 20;

// `git cat-file --batch` output → one file per blob, named by its id, in `dir`; each blob's
// start, content and end also go to the hooks when set.
class BatchWriter {
  public:
    struct Hooks {
        std::function<Result<void>(std::string_view id)> start;
        std::function<Result<void>(std::string_view bytes)> content;
        std::function<void()> end;
    };
    BatchWriter(fs::path dir, Hooks hooks = {}) : dir_(std::move(dir)), hooks_(std::move(hooks)) {}
    BatchWriter(const BatchWriter&) = delete;
    BatchWriter& operator=(const BatchWriter&) = delete;
    ~BatchWriter() {
        if (!temp_.empty()) ::unlink(temp_.c_str());
    }

    Result<void> feed(std::string_view chunk) {
        while (!chunk.empty()) {
            if (remaining_ == 0 && !in_body_) {
                auto nl = chunk.find('\n');
                header_.append(chunk.substr(0, nl));
                if (nl == std::string_view::npos) return {};
                chunk.remove_prefix(nl + 1);
                if (auto r = start(); !r) return r;
                continue;
            }
            if (remaining_ > 0) {
                auto n = std::min<std::uint64_t>(remaining_, chunk.size());
                if (auto r = write_all(fd_.get(), chunk.data(), n); !r) return r;
                if (hooks_.content)
                    if (auto r = hooks_.content(chunk.substr(0, n)); !r) return r;
                remaining_ -= n;
                chunk.remove_prefix(n);
                if (remaining_ > 0) continue;
            }
            // The newline after the content.
            if (chunk.empty()) return {};
            if (chunk.front() != '\n') return Unexpected("git cat-file: malformed output");
            chunk.remove_prefix(1);
            in_body_ = false;
            if (auto r = publish(); !r) return r;
            if (hooks_.end) hooks_.end();
        }
        return {};
    }
    bool complete() const { return remaining_ == 0 && !in_body_ && header_.empty(); }

  private:
    Result<void> start() {
        std::string h = std::move(header_);
        header_.clear();
        auto sp1 = h.find(' '), sp2 = h.rfind(' ');
        if (sp1 == std::string::npos || sp1 == sp2)
            return Unexpected("git cat-file: " + h); // "<id> missing"
        std::string id = h.substr(0, sp1);
        if (!is_commit_id(id) || h.compare(sp1 + 1, sp2 - sp1 - 1, "blob") != 0)
            return Unexpected("git cat-file: unexpected object " + h);
        remaining_ = std::stoull(h.substr(sp2 + 1));
        in_body_ = true;
        if (hooks_.start)
            if (auto r = hooks_.start(id); !r) return r;
        // A temp name, renamed when complete: another build may read the same blob's file.
        id_ = id;
        temp_ = dir_ / (std::string(temp_prefix) + id + "-" + unique_suffix());
        fd_.reset(
            ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!fd_) return Unexpected("cannot create " + temp_.string() + ": " + errno_string(errno));
        return {};
    }

    Result<void> publish() {
        fd_.reset();
        if (::rename(temp_.c_str(), (dir_ / id_).c_str()) != 0) {
            int err = errno;
            ::unlink(temp_.c_str());
            return Unexpected("cannot rename " + temp_.string() + ": " + errno_string(err));
        }
        temp_.clear();
        return {};
    }

    fs::path dir_;
    Hooks hooks_;
    std::string id_;
    fs::path temp_;
    std::string header_;
    std::uint64_t remaining_ = 0;
    bool in_body_ = false;
    Fd fd_;
};

// Runs `cat_file` on `ids` into `writer`. The ids go in through a file: cat-file's output is
// read while nothing is written to it.
Result<void> run_batch(const Command& cat_file, const std::string& ids, const fs::path& dir,
                       BatchWriter& writer) {
    fs::path list = dir / (std::string(temp_prefix) + "blobs-" + unique_suffix());
    write_file_atomic(list, ids);
    Fd in(::open(list.c_str(), O_RDONLY | O_CLOEXEC));
    std::error_code ec;
    fs::remove(list, ec);
    if (!in) return Unexpected("cannot open " + list.string() + ": " + errno_string(errno));
    Command c = cat_file;
    c.stdin_fd = in.get();
    auto r = run_command(c, [&](std::string_view chunk) { return writer.feed(chunk); });
    if (!r) return Unexpected(r.error());
    if (r->status != 0 || !writer.complete())
        return Unexpected("git cat-file failed: " + last_line(r->error));
    return {};
}

} // namespace

Result<void> extract_blobs(const Command& cat_file, const std::string& ids,
                           const fs::path& content_dir) {
    BatchWriter writer(content_dir);
    return run_batch(cat_file, ids, content_dir, writer);
}

// One repository's cat-file: its producer thread fills `queue` in request order, the layer
// writer's thread drains it.
struct GitBlobStream::Repo {
    Command cat_file;
    std::string url;
    std::vector<std::pair<std::string, std::string>> blobs; // path, id; request order

    struct Piece {
        std::size_t seq; // in `blobs`
        std::string bytes;
    };
    std::mutex mutex;
    std::condition_variable changed;
    std::deque<Piece> queue;
    std::size_t queued = 0;     // bytes in `queue`
    std::size_t front_used = 0; // of queue.front(), already read
    bool done = false, stop = false;
    std::optional<std::string> error;
    std::thread thread;

    void produce(const fs::path& dir) {
        std::string ids;
        for (const auto& b : blobs)
            ids += b.second + "\n";
        std::size_t seq = 0;
        BatchWriter::Hooks hooks;
        hooks.start = [&](std::string_view id) -> Result<void> {
            if (seq >= blobs.size() || id != blobs[seq].second)
                return Unexpected("git cat-file: blob " + std::string(id) + " out of order");
            return {};
        };
        hooks.content = [&](std::string_view bytes) -> Result<void> {
            std::unique_lock lock(mutex);
            changed.wait(lock, [&] { return stop || queued < max_queued; });
            if (stop) return Unexpected("stopped");
            queue.push_back({seq, std::string(bytes)});
            queued += bytes.size();
            changed.notify_all();
            return {};
        };
        hooks.end = [&] { ++seq; };
        BatchWriter writer(dir, std::move(hooks));
        Result<void> r;
        try {
            r = run_batch(cat_file, ids, dir, writer);
        } catch (const std::exception& e) {
            r = Unexpected(std::string(e.what()));
        }
        std::lock_guard lock(mutex);
        if (!r && !stop) error = r.error() + " (" + url + ")";
        done = true;
        changed.notify_all();
    }
};

GitBlobStream::GitBlobStream(fs::path content_dir) : content_dir_(std::move(content_dir)) {}

GitBlobStream::~GitBlobStream() {
    for (auto& repo : repos_) {
        {
            std::lock_guard lock(repo->mutex);
            repo->stop = true;
        }
        repo->changed.notify_all();
        if (repo->thread.joinable()) repo->thread.join();
    }
}

void GitBlobStream::add(const Command& cat_file, const std::string& url, std::string path,
                        std::string id) {
    std::size_t r = 0;
    while (r < repos_.size() && repos_[r]->cat_file.cwd != cat_file.cwd)
        ++r;
    if (r == repos_.size()) {
        repos_.push_back(std::make_unique<Repo>());
        repos_.back()->cat_file = cat_file;
        repos_.back()->url = url;
    }
    where_[path] = {r, 0};
    repos_[r]->blobs.emplace_back(std::move(path), std::move(id));
}

bool GitBlobStream::provides(const layer::Entry& entry) const {
    return entry.type == layer::Entry::Type::file && where_.contains(entry.path);
}

// Each repository's requests in the order the layer writer will ask for them (canonical, as
// sort_entries), then its producer started.
void GitBlobStream::start() {
    started_ = true;
    for (std::size_t r = 0; r < repos_.size(); ++r) {
        auto& repo = *repos_[r];
        std::sort(repo.blobs.begin(), repo.blobs.end(),
                  [](const auto& a, const auto& b) { return layer::path_less(a.first, b.first); });
        for (std::size_t i = 0; i < repo.blobs.size(); ++i)
            where_[repo.blobs[i].first] = {r, i};
        repo.thread = std::thread([this, &repo] { repo.produce(content_dir_); });
    }
}

Result<void> GitBlobStream::open(const layer::Entry& entry) {
    if (!started_) start();
    auto it = where_.find(entry.path);
    if (it == where_.end()) return Unexpected("no git blob for " + entry.path);
    auto& repo = *repos_[it->second.first];
    if (current_ == &repo && it->second.second < current_seq_)
        return Unexpected("git blob of " + entry.path + " asked for out of order");
    current_ = &repo;
    current_seq_ = it->second.second;
    return {};
}

Result<std::size_t> GitBlobStream::read(char* buf, std::size_t size) {
    if (!current_) return Unexpected("git blob stream: no entry open");
    auto& repo = *current_;
    std::unique_lock lock(repo.mutex);
    for (;;) {
        repo.changed.wait(lock, [&] { return !repo.queue.empty() || repo.done; });
        if (repo.queue.empty()) {
            if (repo.error) return Unexpected(*repo.error);
            return std::size_t{0};
        }
        auto& front = repo.queue.front();
        if (front.seq > current_seq_) return std::size_t{0};
        if (front.seq == current_seq_ && size > 0) {
            std::size_t n = std::min(size, front.bytes.size() - repo.front_used);
            std::memcpy(buf, front.bytes.data() + repo.front_used, n);
            repo.front_used += n;
            if (repo.front_used < front.bytes.size()) return n;
            repo.queued -= front.bytes.size();
            repo.front_used = 0;
            repo.queue.pop_front();
            repo.changed.notify_all();
            return n;
        }
        if (front.seq == current_seq_) return std::size_t{0}; // size 0: nothing asked
        // A blob the writer skipped.
        repo.queued -= front.bytes.size();
        repo.front_used = 0;
        repo.queue.pop_front();
        repo.changed.notify_all();
    }
}

} // namespace factory::sources
