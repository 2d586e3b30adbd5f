#include "factory/registry/blob_sources.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "factory/util/fd.hpp"

namespace factory::registry {

namespace {

constexpr std::size_t max_lines = 64; // older lines are ignored (a blob in many repositories)

bool valid_part(const std::string& s) {
    return !s.empty() && s.size() < 512 && std::none_of(s.begin(), s.end(), [](char c) {
        return c == ' ' || c == '\n' || c == '\0';
    });
}

std::vector<std::pair<std::string, std::string>> read_lines(const fs::path& file) {
    std::vector<std::pair<std::string, std::string>> out;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        auto space = line.find(' ');
        if (space == std::string::npos) continue;
        out.emplace_back(line.substr(0, space), line.substr(space + 1));
    }
    if (out.size() > max_lines) out.erase(out.begin(), out.end() - max_lines);
    return out;
}

} // namespace

BlobSources::BlobSources(const oci::Layout& store) : BlobSources(store.blobs()) {}

BlobSources::BlobSources(const cache::BlobStore& blobs)
    : dir_(blobs.dir().parent_path().parent_path() / "registry-sources") {}

fs::path BlobSources::file(const std::string& digest) const {
    if (!digest.starts_with("sha256:") || digest.size() != 71) return {};
    auto hex = digest.substr(7);
    if (!std::all_of(hex.begin(), hex.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
        return {};
    return dir_ / hex;
}

void BlobSources::record(const std::string& digest, const std::string& host,
                         const std::string& repository) const noexcept {
    try {
        auto f = file(digest);
        if (f.empty() || !valid_part(host) || !valid_part(repository)) return;
        auto lines = read_lines(f);
        if (!lines.empty() && lines.back() == std::make_pair(host, repository)) return;
        std::error_code ec;
        fs::create_directories(dir_, ec);
        // One short O_APPEND write: concurrent pushes and pulls interleave whole lines.
        Fd fd(::open(f.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
        if (!fd) return;
        auto line = host + " " + repository + "\n";
        [[maybe_unused]] auto n = ::write(fd.get(), line.data(), line.size());
    } catch (...) {
    }
}

std::vector<std::string> BlobSources::repositories(const std::string& digest,
                                                   const std::string& host, std::size_t max) const {
    std::vector<std::string> out;
    auto f = file(digest);
    if (f.empty()) return out;
    auto lines = read_lines(f);
    for (auto it = lines.rbegin(); it != lines.rend() && out.size() < max; ++it)
        if (it->first == host && std::find(out.begin(), out.end(), it->second) == out.end())
            out.push_back(it->second);
    return out;
}

} // namespace factory::registry
