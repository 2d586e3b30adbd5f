// libFuzzer target: the one layer reader (runtime/tar_reader.hpp) must never crash, hang or
// read past its caps on any blob — plain, gzip or zstd, corrupt or hostile — and every entry's
// data must stay within the size its header gave.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "factory/runtime/tar_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string path =
        (std::filesystem::temp_directory_path() / ("tar-reader-fuzz-" + std::to_string(::getpid())))
            .string();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) std::abort();
    if (size && ::write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
    ::close(fd);

    factory::runtime::StreamLimits limits;
    limits.max_bytes = 64 << 20;
    limits.ratio_after = 1 << 20;
    limits.max_ratio = 100;
    auto reader = factory::runtime::TarReader::open(path, std::nullopt, limits);
    if (!reader) return 0;
    for (int n = 0; n < 10000; ++n) {
        auto e = (*reader)->next();
        if (!e || !*e) break;
        std::uint64_t declared =
            archive_entry_size_is_set(*e) ? static_cast<std::uint64_t>(archive_entry_size(*e)) : 0;
        std::uint64_t seen = 0;
        auto ok = (*reader)->read_data(
            [&](std::int64_t offset, std::string_view bytes) -> factory::Result<void> {
                if (offset < 0) std::abort();
                seen = std::max(seen, static_cast<std::uint64_t>(offset) + bytes.size());
                return {};
            });
        if (!ok) break;
        if (seen > declared && declared > 0) std::abort();
    }
    if ((*reader)->stream().uncompressed_bytes() > limits.max_bytes + (1 << 20)) std::abort();
    return 0;
}
