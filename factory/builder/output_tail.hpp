#pragma once
// What a failed RUN or deps step shows of its command's output (docs/cli.md "Errors"): its last
// lines and, before them, the first lines that look like an error report and scrolled out of
// that tail. A tool's cause often comes first and more text after it: `npm ci` prints
// `npm ERR! Invalid: lock file's …` and then 40 lines of its usage, `apt-get` its `E: …` and
// then its summary. Bounded whatever the command prints: tail + errors lines, each cut at
// max_line bytes.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace factory::builder {

// True for a line an error report is made of: one containing `ERR!` (npm) or `error:` (any
// case: compilers, make, Python, Go, `Error: …` of Node), or starting with `E: ` (apt) or
// `fatal: ` (git) — and more than that marker (npm's bare `npm ERR! ` lines are not).
bool looks_like_error(std::string_view line);

class OutputTail {
  public:
    static constexpr std::size_t max_line = 1000;

    // Keeps the last `tail` lines and the first `errors` error lines before them.
    explicit OutputTail(std::size_t tail = 30, std::size_t errors = 10);

    void add(std::string_view line);
    bool empty() const noexcept { return tail_.empty(); }

    // Some error line before the tail is kept.
    bool kept_errors() const noexcept { return !errors_.empty(); }

    // The kept lines in output order; each run of lines left out between (or before) them is
    // one line `… (N lines left out)`.
    std::vector<std::string> lines() const;

  private:
    struct Line {
        std::uint64_t index;
        std::string text;
    };
    std::size_t tail_size_, errors_size_;
    std::uint64_t count_ = 0;
    std::vector<Line> errors_; // error lines that scrolled out of the tail, the first ones
    std::deque<Line> tail_;
};

} // namespace factory::builder
