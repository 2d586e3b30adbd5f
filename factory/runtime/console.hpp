#pragma once
// factory's own end of a container's terminal (runtime-spec's console socket): the runtime
// creates the pty inside the container and sends its master end over a unix socket; factory
// copies between that master and its own terminal, which it puts in raw mode meanwhile, and
// passes every window-size change on (SIGWINCH → TIOCSWINSZ on the master).
//
// Why not leave the terminal to the runtime: crun 1.8 neither copies the caller's window size to
// the pty nor forwards SIGWINCH, so a resized terminal kept its first size. With the master in
// our hands the behaviour is the same whatever the runtime, and crun — whose exec is a fraction
// of runc's — can serve terminals too.

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <functional>

#include "factory/util/error.hpp"
#include "factory/util/fd.hpp"

namespace factory::runtime {

namespace fs = std::filesystem;

// A listening unix socket at path (removed first if it exists, and when this object goes).
// Errors: a path longer than a socket address holds (108 bytes), bind/listen failures.
class ConsoleSocket {
  public:
    static Result<ConsoleSocket> listen(const fs::path& path);
    ConsoleSocket(ConsoleSocket&&) noexcept = default;
    ConsoleSocket& operator=(ConsoleSocket&&) noexcept = default;
    ~ConsoleSocket();

    const fs::path& path() const noexcept { return path_; }
    int fd() const noexcept { return fd_.get(); }

  private:
    ConsoleSocket() = default;
    fs::path path_;
    Fd fd_;
};

// Waits for the runtime (process `runtime_pid`, started with --console-socket) to send the
// pty's master, then proxies it to our stdin/stdout until the runtime exits and the master has
// nothing more to say; returns the runtime's exit status (as wait_exit). Our terminal is in raw
// mode meanwhile and restored on every way out. When *cancel becomes true, on_cancel() is
// called once (it kills the process). Errors: the runtime exits without sending a master (its
// status is returned then: its own error is in its log), I/O errors.
Result<int> proxy_console(ConsoleSocket& socket, pid_t runtime_pid, const std::atomic<bool>* cancel,
                          const std::function<void()>& on_cancel);

} // namespace factory::runtime
