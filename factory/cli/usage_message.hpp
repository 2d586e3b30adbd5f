#pragma once
// The `factory: error: …` line of a command line CLI11 rejects (docs/cli.md "Conventions"):
// CLI11's text said again in factory's words — which command, which argument — with the
// --help hint in the same line, so that the error stays the last line factory writes.

#include <string>
#include <vector>

namespace CLI {
class App;
class ParseError;
} // namespace CLI

namespace factory::cli {

// The message (without "factory: error: ") for `error`, thrown by app.parse(). app's parsed
// subcommands say which command the error belongs to: `build: missing RECIPE; see 'factory
// build --help'`, `unknown command 'bogus' (build, plan, …); see 'factory --help'`. A kind of
// error it does not know keeps CLI11's text after the command's name. `args`, the command line
// without the program, tells an unknown option given before the command (`factory --bogus
// build`), which is factory's own, from one of the command's.
std::string usage_message(const CLI::App& app, const CLI::ParseError& error,
                          const std::vector<std::string>& args = {});

} // namespace factory::cli
