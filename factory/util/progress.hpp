#pragma once
// Build progress on stderr, in one of three forms:
//   tty   — a live view: each running step has a line, redrawn with its elapsed time (steps of
//           a parallel build run at the same time);
//   plain — one line per event, for CI logs;
//   json  — one JSON object per line, for machines (warnings too: warn() below).
// NO_COLOR (any value) turns colour off in the tty form. Thread-safe.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace factory {

enum class ProgressMode { automatic, tty, plain, json, quiet };

// Parses "auto|tty|plain|json|quiet"; nullopt for anything else.
std::optional<ProgressMode> parse_progress_mode(std::string_view s);

class Progress {
  public:
    Progress(ProgressMode mode, std::FILE* out = stderr);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    ProgressMode mode() const noexcept { return mode_; }

    // A step starts: `id` like "main 2/3", `what` like "copy src/ → /app".
    void step_start(const std::string& id, const std::string& what);
    // The running step finished; `result` like "sha256:ab12… 3.1 MB".
    void step_done(const std::string& id, const std::string& result, bool cached = false);
    void step_failed(const std::string& id, const std::string& message);
    // tty: a running step's live status, drawn after its description ("3.1 MB / 12 MB,
    // 5.0 MB/s"); the other forms print nothing for it (their lines are the events).
    void step_status(const std::string& id, const std::string& status);
    // One line of a running step's command output.
    void output(const std::string& id, std::string_view line);
    // Any other event: "base", "export", "done" … with a message.
    void event(const std::string& kind, const std::string& message);

  private:
    struct Running {
        std::string id, what;
        std::chrono::steady_clock::time_point started;
        std::string status = {}; // step_status
    };
    void tick_loop();
    void redraw_locked();
    void clear_locked(); // tty: erases the running steps' lines
    // Forgets a running step; returns its description and elapsed seconds.
    std::pair<std::string, double> finish_locked(const std::string& id);
    void emit_json(const char* event, const std::string& id, const std::string& text,
                   double seconds);
    double elapsed(const std::string& id) const;

    ProgressMode mode_;
    std::FILE* out_;
    bool color_ = false;
    std::mutex mutex_;
    std::vector<Running> running_; // in start order
    std::size_t drawn_ = 0;        // tty: running lines on screen below the last full line
    std::chrono::steady_clock::time_point started_;
    bool stop_ = false;
    std::thread ticker_;
};

// A warning: "factory: warning: MESSAGE" on stderr, or, while a Progress in json mode exists,
// its event {"event":"warning","message":MESSAGE,…}, so that a json stream stays one JSON
// object per line. Thread-safe.
void warn(const std::string& message);

// "12.3 MB" / "512 B" (decimal units, like docker).
std::string human_size(std::uint64_t bytes);
// "45s", "12m", "5h", "3d": seconds under 2 min, minutes under 2 h, hours under 2 d, then days
// (a negative duration counts as 0).
std::string human_duration(std::int64_t seconds);
// Escapes a string for inclusion in JSON (without the quotes).
std::string json_escape(std::string_view s);

} // namespace factory
