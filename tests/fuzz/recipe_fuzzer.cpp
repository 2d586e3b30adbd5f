// libFuzzer target for the recipe parser (STYLE.md: fuzz every parser of outside input).
// recipe::parse must reject any text with a factory::Error — never crash, hang, leak or throw
// anything else (an escaping exception aborts the run, which libFuzzer reports).
// Seeds: tests/fuzz/corpus/recipe/.
#include "factory/recipe/parser.hpp"
#include "factory/util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const factory::recipe::LoadOptions options = [] {
        factory::recipe::LoadOptions o;
        o.host_architecture = "amd64"; // no uname() per input
        return o;
    }();
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        // A relative name: paths in the recipe resolve against the fuzzer's working
        // directory, which parse() only stats.
        factory::recipe::parse(text, "fuzz.toml", options);
    } catch (const factory::Error&) {
    }
    return 0;
}
