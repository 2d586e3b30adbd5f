#include "factory/util/progress.hpp"

#include <unistd.h>

#include <cstdlib>
#include <optional>

namespace factory {

std::optional<ProgressMode> parse_progress_mode(std::string_view s) {
    if (s == "auto") return ProgressMode::automatic;
    if (s == "tty") return ProgressMode::tty;
    if (s == "plain") return ProgressMode::plain;
    if (s == "json") return ProgressMode::json;
    if (s == "quiet") return ProgressMode::quiet;
    return std::nullopt;
}

std::string human_duration(std::int64_t s) {
    if (s < 0) s = 0;
    if (s < 120) return std::to_string(s) + "s";
    if (s < 7200) return std::to_string(s / 60) + "m";
    if (s < 172800) return std::to_string(s / 3600) + "h";
    return std::to_string(s / 86400) + "d";
}

std::string human_size(std::uint64_t bytes) {
    static const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out;
}

Progress::Progress(ProgressMode mode, std::FILE* out) : mode_(mode), out_(out) {
    if (mode_ == ProgressMode::automatic)
        mode_ = ::isatty(::fileno(out_)) ? ProgressMode::tty : ProgressMode::plain;
    color_ = mode_ == ProgressMode::tty && !std::getenv("NO_COLOR");
    started_ = std::chrono::steady_clock::now();
    if (mode_ == ProgressMode::tty) ticker_ = std::thread([this] { tick_loop(); });
}

Progress::~Progress() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    if (ticker_.joinable()) ticker_.join();
}

double Progress::elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - step_started_).count();
}

void Progress::tick_loop() {
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::lock_guard lock(mutex_);
        if (stop_) return;
        if (!running_id_.empty()) redraw_locked();
    }
}

void Progress::redraw_locked() {
    const char* dim = color_ ? "\033[36m" : "";
    const char* reset = color_ ? "\033[0m" : "";
    std::fprintf(out_, "\r\033[K%s=> [%s]%s %s %.1fs", dim, running_id_.c_str(), reset,
                 running_what_.c_str(), elapsed());
    std::fflush(out_);
}

void Progress::emit_json(const char* event, const std::string& id, const std::string& text,
                         double seconds) {
    std::fprintf(out_, "{\"event\":\"%s\",\"id\":\"%s\",\"message\":\"%s\",\"seconds\":%.3f}\n",
                 event, json_escape(id).c_str(), json_escape(text).c_str(), seconds);
    std::fflush(out_);
}

void Progress::step_start(const std::string& id, const std::string& what) {
    std::lock_guard lock(mutex_);
    running_id_ = id;
    running_what_ = what;
    step_started_ = std::chrono::steady_clock::now();
    switch (mode_) {
    case ProgressMode::tty:
        redraw_locked();
        break;
    case ProgressMode::plain:
        std::fprintf(out_, "[%s] %s\n", id.c_str(), what.c_str());
        std::fflush(out_);
        break;
    case ProgressMode::json:
        emit_json("step-start", id, what, 0);
        break;
    default:
        break;
    }
}

void Progress::step_done(const std::string& id, const std::string& result, bool cached) {
    std::lock_guard lock(mutex_);
    double secs = elapsed();
    std::string what = running_what_;
    running_id_.clear();
    switch (mode_) {
    case ProgressMode::tty: {
        const char* green = color_ ? "\033[32m" : "";
        const char* reset = color_ ? "\033[0m" : "";
        std::fprintf(out_, "\r\033[K%s=> [%s]%s %s %s%s %.1fs\n", green, id.c_str(), reset,
                     what.c_str(), cached ? "CACHED " : "", result.c_str(), secs);
        break;
    }
    case ProgressMode::plain:
        std::fprintf(out_, "[%s] %s%s (%.2fs)\n", id.c_str(), cached ? "cached " : "done ",
                     result.c_str(), secs);
        break;
    case ProgressMode::json:
        emit_json(cached ? "step-cached" : "step-done", id, result, secs);
        break;
    default:
        break;
    }
    std::fflush(out_);
}

void Progress::step_failed(const std::string& id, const std::string& message) {
    std::lock_guard lock(mutex_);
    double secs = elapsed();
    running_id_.clear();
    switch (mode_) {
    case ProgressMode::tty: {
        const char* red = color_ ? "\033[31m" : "";
        const char* reset = color_ ? "\033[0m" : "";
        std::fprintf(out_, "\r\033[K%s=> [%s] FAILED%s %.1fs\n", red, id.c_str(), reset, secs);
        break;
    }
    case ProgressMode::plain:
        std::fprintf(out_, "[%s] failed (%.2fs)\n", id.c_str(), secs);
        break;
    case ProgressMode::json:
        emit_json("step-failed", id, message, secs);
        break;
    default:
        break;
    }
    std::fflush(out_);
}

void Progress::output(const std::string& id, std::string_view line) {
    std::lock_guard lock(mutex_);
    switch (mode_) {
    case ProgressMode::tty:
        std::fprintf(out_, "\r\033[K    %.*s\n", static_cast<int>(line.size()), line.data());
        if (!running_id_.empty()) redraw_locked();
        break;
    case ProgressMode::plain:
        std::fprintf(out_, "[%s] | %.*s\n", id.c_str(), static_cast<int>(line.size()), line.data());
        break;
    case ProgressMode::json:
        emit_json("output", id, std::string(line), elapsed());
        break;
    default:
        return;
    }
    std::fflush(out_);
}

void Progress::event(const std::string& kind, const std::string& message) {
    std::lock_guard lock(mutex_);
    double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    switch (mode_) {
    case ProgressMode::tty:
    case ProgressMode::plain:
        std::fprintf(out_, "%s%s: %s\n", mode_ == ProgressMode::tty ? "\r\033[K" : "", kind.c_str(),
                     message.c_str());
        if (mode_ == ProgressMode::tty && !running_id_.empty()) redraw_locked();
        break;
    case ProgressMode::json:
        emit_json(kind.c_str(), "", message, total);
        break;
    default:
        break;
    }
    std::fflush(out_);
}

} // namespace factory
