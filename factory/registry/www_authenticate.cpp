#include "factory/registry/www_authenticate.hpp"

#include <cctype>

namespace factory::registry {

namespace {

// RFC 9110 tchar.
bool is_tchar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

class Lexer {
  public:
    explicit Lexer(std::string_view s) : s_(s) {}
    bool done() const { return i_ >= s_.size(); }
    std::size_t pos() const { return i_; }
    char peek() const { return done() ? '\0' : s_[i_]; }
    void skip_ws() {
        while (!done() && (s_[i_] == ' ' || s_[i_] == '\t'))
            ++i_;
    }
    // Skips whitespace and commas (empty list elements are allowed, RFC 9110 §5.6.1).
    void skip_separators() {
        while (!done() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ','))
            ++i_;
    }
    std::string_view token() {
        auto start = i_;
        while (!done() && is_tchar(s_[i_]))
            ++i_;
        return s_.substr(start, i_ - start);
    }
    // An unquoted value: lenient beyond RFC 9110's token, since registries write scopes such as
    // repository:a/b:pull unquoted; it ends at a comma, white space or a quote.
    std::string_view bare_value() {
        auto start = i_;
        while (!done() && s_[i_] != ',' && s_[i_] != ' ' && s_[i_] != '\t' && s_[i_] != '"' &&
               static_cast<unsigned char>(s_[i_]) >= 0x21 && s_[i_] != 0x7f)
            ++i_;
        return s_.substr(start, i_ - start);
    }
    // A token68 tail: '='s after the token characters.
    void skip_equals() {
        while (!done() && s_[i_] == '=')
            ++i_;
    }
    Result<std::string> quoted() {
        ++i_; // the opening quote
        std::string out;
        while (!done()) {
            char c = s_[i_++];
            if (c == '"') return out;
            if (c == '\\') {
                if (done()) break;
                c = s_[i_++];
            }
            out.push_back(c);
        }
        return Unexpected("unterminated quoted string");
    }
    // Saves and restores the position for a look-ahead.
    std::size_t mark() const { return i_; }
    void reset(std::size_t m) { i_ = m; }

  private:
    std::string_view s_;
    std::size_t i_ = 0;
};

std::string at(const Lexer& lx) {
    return " at offset " + std::to_string(lx.pos());
}

// Reads the auth-params (or token68) after a scheme, up to the next challenge's scheme.
Result<void> read_params(Lexer& lx, Challenge& c) {
    bool first = true;
    for (;;) {
        lx.skip_separators();
        if (lx.done()) return {};
        auto m = lx.mark();
        auto name = lx.token();
        if (name.empty()) return Unexpected("expected a parameter name" + at(lx));
        lx.skip_ws();
        if (lx.peek() != '=') {
            lx.reset(m); // the next challenge's scheme
            return {};
        }
        lx.skip_equals();
        auto after_equals = lx.mark();
        lx.skip_ws();
        if (first && (lx.done() || lx.peek() == ',') && after_equals - m > name.size() + 1) {
            c.params["token68"] =
                std::string(name) + std::string(after_equals - m - name.size(), '=');
            return {};
        }
        std::string value;
        if (lx.peek() == '"') {
            auto q = lx.quoted();
            if (!q) return Unexpected(q.error() + at(lx));
            value = std::move(*q);
        } else {
            value = std::string(lx.bare_value());
        }
        c.params[lower(name)] = std::move(value);
        first = false;
        lx.skip_ws();
        if (!lx.done() && lx.peek() != ',')
            return Unexpected("expected ',' after parameter '" + std::string(name) + "'" + at(lx));
    }
}

} // namespace

Result<std::vector<Challenge>> parse_www_authenticate(std::string_view header) {
    if (header.size() > (16u << 10)) return Unexpected("WWW-Authenticate: header over 16 KiB");
    std::vector<Challenge> out;
    Lexer lx(header);
    for (;;) {
        lx.skip_separators();
        if (lx.done()) break;
        auto scheme = lx.token();
        if (scheme.empty()) return Unexpected("WWW-Authenticate: expected an auth scheme" + at(lx));
        Challenge c;
        c.scheme = lower(scheme);
        if (!lx.done() && lx.peek() != ' ' && lx.peek() != '\t' && lx.peek() != ',')
            return Unexpected("WWW-Authenticate: unexpected character after scheme" + at(lx));
        if (auto r = read_params(lx, c); !r) return Unexpected("WWW-Authenticate: " + r.error());
        out.push_back(std::move(c));
        if (out.size() > 64) return Unexpected("WWW-Authenticate: more than 64 challenges");
    }
    if (out.empty()) return Unexpected("WWW-Authenticate: no challenge");
    return out;
}

std::string Challenge::param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
}

} // namespace factory::registry
