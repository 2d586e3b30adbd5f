#include "factory/builder/output_tail.hpp"

#include <cctype>

namespace factory::builder {

namespace {

bool contains_nocase(std::string_view text, std::string_view lower) {
    if (text.size() < lower.size()) return false;
    for (std::size_t i = 0; i + lower.size() <= text.size(); ++i) {
        std::size_t j = 0;
        while (j < lower.size() &&
               std::tolower(static_cast<unsigned char>(text[i + j])) == lower[j])
            ++j;
        if (j == lower.size()) return true;
    }
    return false;
}

// The line has something besides its marker and blanks.
bool more_than(std::string_view line, std::string_view marker) {
    auto at = line.find(marker);
    auto rest = at == std::string_view::npos ? line : line.substr(at + marker.size());
    return rest.find_first_not_of(" \t\r") != std::string_view::npos;
}

std::string cut(std::string_view line) {
    if (line.size() <= OutputTail::max_line) return std::string(line);
    return std::string(line.substr(0, OutputTail::max_line)) + "…";
}

std::string gap(std::uint64_t n) {
    return "… (" + std::to_string(n) + (n == 1 ? " line" : " lines") + " left out)";
}

} // namespace

bool looks_like_error(std::string_view line) {
    if (line.find("ERR!") != std::string_view::npos) return more_than(line, "ERR!");
    if (line.starts_with("E: ") || line.starts_with("fatal: ")) return true;
    return contains_nocase(line, "error:");
}

OutputTail::OutputTail(std::size_t tail, std::size_t errors)
    : tail_size_(tail > 0 ? tail : 1), errors_size_(errors) {}

void OutputTail::add(std::string_view line) {
    tail_.push_back({count_++, cut(line)});
    if (tail_.size() <= tail_size_) return;
    // Scrolling out: kept when it is one of the first error lines.
    if (errors_.size() < errors_size_ && looks_like_error(tail_.front().text))
        errors_.push_back(std::move(tail_.front()));
    tail_.pop_front();
}

std::vector<std::string> OutputTail::lines() const {
    std::vector<std::string> out;
    std::uint64_t next = 0; // the index the next kept line has when nothing is left out
    auto keep = [&](const Line& l) {
        if (l.index > next) out.push_back(gap(l.index - next));
        out.push_back(l.text);
        next = l.index + 1;
    };
    for (const auto& l : errors_)
        keep(l);
    for (const auto& l : tail_)
        keep(l);
    return out;
}

} // namespace factory::builder
