#pragma once

namespace factory::cli {

// Parses argv, runs the command, prints errors as "factory: error: …"; returns the exit code.
int run(int argc, char** argv);

} // namespace factory::cli
