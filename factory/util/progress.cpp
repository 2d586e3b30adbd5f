#include "factory/util/progress.hpp"

#include <unistd.h>

#include <cstdlib>
#include <optional>

namespace factory {

namespace {

// The json Progress that warnings go through while it exists. A process-wide pointer, not a
// parameter: warnings come from code far from any Progress (the registry client's TLS warning,
// a --cache-from failure deep in a step), some before the command's Progress is made, and a
// command has one progress stream. Guarded by warn_mutex.
std::mutex warn_mutex;
Progress* json_sink = nullptr;

} // namespace

void warn(const std::string& message) {
    std::lock_guard lock(warn_mutex);
    if (json_sink) {
        json_sink->event("warning", message);
        return;
    }
    std::fprintf(stderr, "factory: warning: %s\n", message.c_str());
    std::fflush(stderr);
}

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
    if (mode_ == ProgressMode::json) {
        std::lock_guard lock(warn_mutex);
        if (!json_sink) json_sink = this;
    }
}

Progress::~Progress() {
    {
        std::lock_guard lock(warn_mutex);
        if (json_sink == this) json_sink = nullptr;
    }
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    if (ticker_.joinable()) ticker_.join();
}

double Progress::elapsed(const std::string& id) const {
    auto now = std::chrono::steady_clock::now();
    for (const auto& r : running_)
        if (r.id == id) return std::chrono::duration<double>(now - r.started).count();
    return std::chrono::duration<double>(now - started_).count();
}

void Progress::tick_loop() {
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::lock_guard lock(mutex_);
        if (stop_) return;
        if (!running_.empty()) redraw_locked();
    }
}

void Progress::clear_locked() {
    if (mode_ != ProgressMode::tty) return;
    if (drawn_ > 1) std::fprintf(out_, "\033[%zuA", drawn_ - 1);
    std::fprintf(out_, "\r\033[J");
    drawn_ = 0;
}

// One line per running step; the cursor stays at the end of the last one, so the next full
// line starts after clear_locked().
void Progress::redraw_locked() {
    clear_locked();
    const char* dim = color_ ? "\033[36m" : "";
    const char* reset = color_ ? "\033[0m" : "";
    auto now = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < running_.size(); ++i) {
        const auto& r = running_[i];
        // A line that wraps would break the cursor arithmetic: the description is cut.
        auto what = r.what.size() > 60 ? r.what.substr(0, 57) + "..." : r.what;
        if (!r.status.empty())
            what += " " + (r.status.size() > 40 ? r.status.substr(0, 40) : r.status);
        std::fprintf(out_, "%s%s=> [%s]%s %s %.1fs", i ? "\n" : "", dim, r.id.c_str(), reset,
                     what.c_str(), std::chrono::duration<double>(now - r.started).count());
    }
    drawn_ = running_.size();
    std::fflush(out_);
}

std::pair<std::string, double> Progress::finish_locked(const std::string& id) {
    for (auto it = running_.begin(); it != running_.end(); ++it)
        if (it->id == id) {
            auto secs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - it->started)
                    .count();
            auto what = std::move(it->what);
            running_.erase(it);
            return {what, secs};
        }
    return {"", 0.0};
}

void Progress::emit_json(const char* event, const std::string& id, const std::string& text,
                         double seconds) {
    std::fprintf(out_, "{\"event\":\"%s\",\"id\":\"%s\",\"message\":\"%s\",\"seconds\":%.3f}\n",
                 event, json_escape(id).c_str(), json_escape(text).c_str(), seconds);
    std::fflush(out_);
}

void Progress::step_start(const std::string& id, const std::string& what) {
    std::lock_guard lock(mutex_);
    finish_locked(id); // an id is running once
    running_.push_back({id, what, std::chrono::steady_clock::now()});
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
    auto [what, secs] = finish_locked(id);
    switch (mode_) {
    case ProgressMode::tty: {
        const char* green = color_ ? "\033[32m" : "";
        const char* reset = color_ ? "\033[0m" : "";
        clear_locked();
        std::fprintf(out_, "%s=> [%s]%s %s %s%s %.1fs\n", green, id.c_str(), reset, what.c_str(),
                     cached ? "CACHED " : "", result.c_str(), secs);
        if (!running_.empty()) redraw_locked();
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
    double secs = finish_locked(id).second;
    switch (mode_) {
    case ProgressMode::tty: {
        const char* red = color_ ? "\033[31m" : "";
        const char* reset = color_ ? "\033[0m" : "";
        clear_locked();
        std::fprintf(out_, "%s=> [%s] FAILED%s %.1fs\n", red, id.c_str(), reset, secs);
        if (!running_.empty()) redraw_locked();
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

void Progress::step_status(const std::string& id, const std::string& status) {
    if (mode_ != ProgressMode::tty) return;
    std::lock_guard lock(mutex_);
    for (auto& r : running_)
        if (r.id == id) r.status = status; // drawn by the next tick
}

void Progress::output(const std::string& id, std::string_view line) {
    std::lock_guard lock(mutex_);
    switch (mode_) {
    case ProgressMode::tty:
        clear_locked();
        std::fprintf(out_, "    %.*s\n", static_cast<int>(line.size()), line.data());
        if (!running_.empty()) redraw_locked();
        break;
    case ProgressMode::plain:
        std::fprintf(out_, "[%s] | %.*s\n", id.c_str(), static_cast<int>(line.size()), line.data());
        break;
    case ProgressMode::json:
        emit_json("output", id, std::string(line), elapsed(id));
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
        clear_locked();
        std::fprintf(out_, "%s: %s\n", kind.c_str(), message.c_str());
        if (!running_.empty()) redraw_locked();
        break;
    case ProgressMode::plain:
        std::fprintf(out_, "%s: %s\n", kind.c_str(), message.c_str());
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
