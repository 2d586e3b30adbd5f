// A stand-in for libFuzzer's main when the fuzz targets are built with a compiler that has no
// libFuzzer (g++): replays every input file or directory given, then feeds seeded random
// mutations of those inputs to the target until -max_total_time or -runs is reached.
// Understands the libFuzzer flags scripts/test.sh passes (-max_total_time=, -runs=, -seed=);
// ignores the others. A crash is reported by the sanitizers, exactly as under libFuzzer.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

using Input = std::vector<std::uint8_t>;

Input read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return Input(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void run(const Input& input) {
    // A copy in a buffer of exactly the input's size, so ASan sees reads past the end.
    auto* copy = new std::uint8_t[input.size() ? input.size() : 1];
    std::copy(input.begin(), input.end(), copy);
    LLVMFuzzerTestOneInput(copy, input.size());
    delete[] copy;
}

Input mutate(const std::vector<Input>& corpus, std::mt19937_64& rng) {
    Input out = corpus.empty() ? Input{} : corpus[rng() % corpus.size()];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < edits; ++i) {
        const std::size_t pos = out.empty() ? 0 : rng() % (out.size() + 1);
        switch (rng() % 6) {
        case 0: // flip a bit
            if (!out.empty()) out[pos % out.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
            break;
        case 1: // random byte
            if (!out.empty()) out[pos % out.size()] = static_cast<std::uint8_t>(rng());
            break;
        case 2: // insert bytes
            out.insert(out.begin() + static_cast<std::ptrdiff_t>(pos), 1 + rng() % 4,
                       static_cast<std::uint8_t>(rng()));
            break;
        case 3: // erase a range
            if (!out.empty()) {
                const std::size_t n =
                    std::min<std::size_t>(out.size() - pos % out.size(), 1 + rng() % 16);
                out.erase(out.begin() + static_cast<std::ptrdiff_t>(pos % out.size()),
                          out.begin() + static_cast<std::ptrdiff_t>(pos % out.size() + n));
            }
            break;
        case 4: // truncate
            out.resize(pos);
            break;
        default: // splice a piece of another input
            if (!corpus.empty()) {
                const Input& other = corpus[rng() % corpus.size()];
                if (!other.empty()) {
                    const std::size_t from = rng() % other.size();
                    const std::size_t n =
                        std::min<std::size_t>(other.size() - from, 1 + rng() % 64);
                    out.insert(out.begin() + static_cast<std::ptrdiff_t>(pos),
                               other.begin() + static_cast<std::ptrdiff_t>(from),
                               other.begin() + static_cast<std::ptrdiff_t>(from + n));
                }
            }
            break;
        }
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    long max_seconds = 0;
    long long runs = -1;
    std::uint64_t seed = 1;
    std::vector<Input> corpus;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind("-max_total_time=", 0) == 0) {
            max_seconds = std::stol(arg.substr(16));
        } else if (arg.rfind("-runs=", 0) == 0) {
            runs = std::stoll(arg.substr(6));
        } else if (arg.rfind("-seed=", 0) == 0) {
            seed = std::stoull(arg.substr(6));
        } else if (arg.rfind("-", 0) == 0) {
            continue; // other libFuzzer flags: not applicable
        } else if (std::filesystem::is_directory(arg)) {
            for (const auto& entry : std::filesystem::recursive_directory_iterator(arg))
                if (entry.is_regular_file()) corpus.push_back(read_file(entry.path()));
        } else {
            corpus.push_back(read_file(arg));
        }
    }
    run(Input{});
    for (const Input& input : corpus)
        run(input);
    std::printf("replay_main: replayed %zu inputs\n", corpus.size());

    std::mt19937_64 rng(seed);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(max_seconds);
    long long done = 0;
    while ((runs < 0 && max_seconds > 0 && std::chrono::steady_clock::now() < deadline) ||
           (runs >= 0 && done < runs)) {
        run(mutate(corpus, rng));
        ++done;
    }
    std::printf("replay_main: %lld mutated inputs, seed %llu, no crash\n", done,
                static_cast<unsigned long long>(seed));
    return 0;
}
