#pragma once
// The two tiers of errors (docs/architecture.md "Errors"): low-level code returns
// Result<T> (std::expected with a message); policy code throws factory::Error, which main
// catches once and prints as `factory: error: …` with the error's exit code.

#include <expected>
#include <stdexcept>
#include <string>

namespace factory {

// Process exit codes; documented in docs/cli.md.
enum class ExitCode : int {
    ok = 0,
    failure = 1, // a build, run or I/O failure
    usage = 2,   // bad command line or recipe
    // run/shell: the command couldn't be started (shells' and Docker's codes)
    cannot_execute = 126, // found but not executable
    not_found = 127,      // no such command
};

class Error : public std::runtime_error {
  public:
    explicit Error(std::string message, ExitCode code = ExitCode::failure)
        : std::runtime_error(std::move(message)), code_(code) {}
    ExitCode code() const noexcept { return code_; }

    // Lines that explain the error (a failed command's last output lines), printed before the
    // one-line `factory: error: …`, which stays the last line. Empty: none.
    Error&& with_context(std::string lines) && {
        context_ = std::move(lines);
        return std::move(*this);
    }
    const std::string& context() const noexcept { return context_; }

  private:
    ExitCode code_;
    std::string context_;
};

// A usage or recipe error: exit code 2.
inline Error usage_error(std::string message) {
    return Error(std::move(message), ExitCode::usage);
}

template <class T> using Result = std::expected<T, std::string>;
using Unexpected = std::unexpected<std::string>;

// Returns the value or throws Error(message, code).
template <class T> T value_or_throw(Result<T> r, ExitCode code = ExitCode::failure) {
    if (!r) throw Error(std::move(r.error()), code);
    return std::move(*r);
}
inline void value_or_throw(Result<void> r, ExitCode code = ExitCode::failure) {
    if (!r) throw Error(std::move(r.error()), code);
}

// strerror(errno) as a std::string, thread-safe.
std::string errno_string(int err);

} // namespace factory
