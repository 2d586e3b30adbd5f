#pragma once
// Running a tool (git) with an environment we choose: posix_spawn with an explicit envp, so
// nothing of the caller's environment reaches the tool unless it is passed on purpose. stdout
// is streamed to a callback or captured; stderr is captured (its tail), for error messages.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/util/error.hpp"

namespace factory::sources {

namespace fs = std::filesystem;

struct Command {
    std::vector<std::string> argv; // argv[0] is the program's path (no PATH search)
    std::vector<std::string> env;  // "NAME=value", the whole environment
    fs::path cwd;                  // empty: ours
    int stdin_fd = -1;             // -1: /dev/null
};

struct CommandResult {
    int status = 0;     // exit code, or 128 + the signal that killed it
    std::string output; // stdout, when no callback took it (at most max_output bytes)
    std::string error;  // the last 64 KiB of stderr
};

// Called with each chunk of stdout; an error stops reading, kills the child and is returned.
using OutputSink = std::function<Result<void>(std::string_view)>;

// Runs `command` to completion. stdout goes to `sink` when set, else into result.output (an
// error past max_output bytes). Errors: the program can't be started, a pipe fails, the sink
// fails. A non-zero exit is not an error: the caller reads result.status.
Result<CommandResult> run_command(const Command& command, const OutputSink& sink = {},
                                  std::uint64_t max_output = 64u << 20);

// The last non-empty line of `text`, trimmed ("" if none): a tool's error, for messages.
std::string last_line(std::string_view text);

} // namespace factory::sources
