#pragma once
// Byte streams between the stages of the layer pipeline (tar → compressor → blob file).

#include "factory/util/error.hpp"

#include <functional>
#include <string_view>

namespace factory::layer {

// Receives the next bytes of a stream, in order. An error stops the producer, which returns
// it unchanged. The bytes are only valid during the call.
using Sink = std::function<Result<void>(std::string_view bytes)>;

// A streaming compressor: write() any number of times, then finish() once. The compressed
// bytes go to the Sink given at construction, in order. After an error every call returns
// that error again. Destroying an unfinished compressor abandons the stream.
class Compressor {
  public:
    virtual ~Compressor() = default;
    virtual Result<void> write(std::string_view bytes) = 0;
    // A point where the compressor may start a new independent piece of its stream (the
    // layer writer calls it between tar entries). The output stays a function of the input
    // and the cut points alone. Most compressors ignore it.
    virtual Result<void> cut() { return {}; }
    virtual Result<void> finish() = 0;
};

} // namespace factory::layer
