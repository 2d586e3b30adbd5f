#include "factory/recipe/nesting.hpp"

#include <vector>

namespace factory::recipe::detail {

namespace {

class Scanner {
  public:
    Scanner(std::string_view text, int limit) : s_(text), limit_(limit) {}
    std::optional<TextPosition> run();

  private:
    char peek(std::size_t ahead = 0) const {
        return i_ + ahead < s_.size() ? s_[i_ + ahead] : '\0';
    }
    bool starts_with(std::string_view what) const { return s_.substr(i_).starts_with(what); }
    void newline() {
        ++line_;
        line_start_ = i_ + 1;
    }
    void skip_comment();
    void skip_string();
    void skip_multiline(char quote);
    void push(int levels);
    void pop();
    void header_open();
    void header_close();
    bool too_deep(int depth);
    TextPosition position() const;

    std::string_view s_;
    int limit_;
    std::size_t i_ = 0;
    int line_ = 1;
    std::size_t line_start_ = 0;
    std::vector<int> open_;  // levels added by each open '[' / '{' of a value
    int open_depth_ = 0;     // sum of open_
    int header_depth_ = 0;   // levels of the current [table] header
    int dots_ = 0;           // '.' since the last key/value boundary: a dotted key's depth
    int key_dots_ = 0;       // dots of the key before the last '=': tables it creates
    bool in_header_ = false; // between a header's '[' and ']'
    bool after_equals_ = false;
    bool exceeded_ = false;
};

TextPosition Scanner::position() const {
    // Columns count code points, as toml++ does.
    int column = 1;
    for (std::size_t k = line_start_; k < i_ && k < s_.size(); ++k)
        if ((static_cast<unsigned char>(s_[k]) & 0xc0) != 0x80) ++column;
    return {line_, column};
}

bool Scanner::too_deep(int depth) {
    if (depth > limit_) exceeded_ = true;
    return exceeded_;
}

void Scanner::skip_comment() {
    while (i_ < s_.size() && s_[i_] != '\n')
        ++i_;
}

// At an opening quote: skip to just after the closing one. A single-line string ends at a
// newline at the latest (toml++ rejects it there).
void Scanner::skip_string() {
    char quote = s_[i_];
    if (peek(1) == quote && peek(2) == quote) return skip_multiline(quote);
    ++i_;
    while (i_ < s_.size() && s_[i_] != '\n') {
        char c = s_[i_];
        if (c == quote) {
            ++i_;
            return;
        }
        if (c == '\\' && quote == '"' && peek(1) != '\n') ++i_;
        ++i_;
    }
}

// TOML: a multi-line string may hold one or two quotes just before its closing delimiter,
// so a run of three to five quotes closes it.
void Scanner::skip_multiline(char quote) {
    i_ += 3;
    while (i_ < s_.size()) {
        char c = s_[i_];
        if (c == '\\' && quote == '"') {
            ++i_; // the escaped character, which may be a line-ending newline
            if (peek() == '\n') newline();
            ++i_;
        } else if (c == quote) {
            std::size_t run = 0;
            while (peek(run) == quote)
                ++run;
            i_ += run;
            if (run >= 3) return;
        } else {
            if (c == '\n') newline();
            ++i_;
        }
    }
}

void Scanner::push(int levels) {
    open_.push_back(levels);
    open_depth_ += levels;
    too_deep(header_depth_ + open_depth_);
}

void Scanner::pop() {
    if (open_.empty()) return;
    open_depth_ -= open_.back();
    open_.pop_back();
}

void Scanner::header_open() {
    in_header_ = true;
    header_depth_ = 0;
    dots_ = 0;
    if (peek(1) == '[') ++i_;
}

void Scanner::header_close() {
    // [a.b] makes two tables; [[a.b]] also an array and its element: count both.
    header_depth_ = dots_ + 2;
    in_header_ = false;
    dots_ = 0;
    too_deep(header_depth_);
    if (peek(1) == ']') ++i_;
}

std::optional<TextPosition> Scanner::run() {
    for (; i_ < s_.size(); ++i_) {
        char c = s_[i_];
        switch (c) {
        case '#':
            skip_comment();
            --i_;
            break;
        case '"':
        case '\'':
            skip_string();
            --i_;
            break;
        case '\n':
            newline();
            dots_ = 0;
            if (open_.empty()) {
                key_dots_ = 0;
                after_equals_ = false;
                in_header_ = false;
            }
            break;
        case '.':
            ++dots_;
            too_deep((in_header_ ? 0 : header_depth_ + open_depth_) + dots_ + 1);
            break;
        case '=':
            key_dots_ = dots_;
            dots_ = 0;
            if (open_.empty()) after_equals_ = true;
            break;
        case ',':
            dots_ = key_dots_ = 0;
            break;
        case '[':
            if (open_.empty() && !after_equals_) {
                header_open();
                break;
            }
            [[fallthrough]];
        case '{':
            push(key_dots_ + 1);
            dots_ = key_dots_ = 0;
            break;
        case ']':
            if (in_header_ && open_.empty()) {
                header_close();
                break;
            }
            [[fallthrough]];
        case '}':
            pop();
            dots_ = key_dots_ = 0;
            break;
        default:
            break;
        }
        if (exceeded_) return position();
    }
    return std::nullopt;
}

} // namespace

std::optional<TextPosition> find_excess_nesting(std::string_view text, int limit) {
    return Scanner(text, limit).run();
}

} // namespace factory::recipe::detail
