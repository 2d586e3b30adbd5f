#include "factory/oci/json.hpp"

#include <charconv>
#include <cmath>
#include <optional>
#include <unordered_set>
#include <vector>

namespace factory::oci {

namespace {

// Builds an ordered_json DOM from SAX events, rejecting duplicate keys and deep nesting.
// Members are appended to the ordered_map's underlying vector directly: ordered_map::emplace
// searches linearly, which would make an object of n keys cost O(n²).
class StrictSax final : public nlohmann::json_sax<Json> {
  public:
    explicit StrictSax(std::size_t max_depth) : max_depth_(max_depth) {}

    bool null() override { return add(Json(nullptr)); }
    bool boolean(bool v) override { return add(Json(v)); }
    bool number_integer(number_integer_t v) override { return add(Json(v)); }
    bool number_unsigned(number_unsigned_t v) override { return add(Json(v)); }
    bool number_float(number_float_t v, const string_t&) override { return add(Json(v)); }
    bool string(string_t& v) override { return add(Json(std::move(v))); }
    bool binary(binary_t&) override { return fail("binary values are not JSON"); }

    bool start_object(std::size_t) override {
        if (!open(Json(nlohmann::json::value_t::object))) return false;
        keys_.emplace_back();
        return true;
    }
    bool key(string_t& k) override {
        if (!keys_.back().insert(k).second)
            return fail("duplicate key \"" + k.substr(0, 100) + "\" in an object");
        key_ = std::move(k);
        return true;
    }
    bool end_object() override {
        keys_.pop_back();
        stack_.pop_back();
        return true;
    }
    bool start_array(std::size_t) override { return open(Json(nlohmann::json::value_t::array)); }
    bool end_array() override {
        stack_.pop_back();
        return true;
    }
    bool parse_error(std::size_t, const std::string&,
                     const nlohmann::detail::exception& ex) override {
        if (error_.empty()) error_ = ex.what();
        return false;
    }

    Json& root() { return root_; }
    const std::string& error() const { return error_; }

  private:
    bool fail(std::string message) {
        if (error_.empty()) error_ = std::move(message);
        return false;
    }

    Json* insert(Json&& v) {
        if (stack_.empty()) {
            root_ = std::move(v);
            return &root_;
        }
        Json& top = *stack_.back();
        if (top.is_array()) {
            auto& arr = top.get_ref<Json::array_t&>();
            arr.push_back(std::move(v));
            return &arr.back();
        }
        auto& members = static_cast<Json::object_t::Container&>(top.get_ref<Json::object_t&>());
        members.emplace_back(std::move(key_), std::move(v));
        return &members.back().second;
    }

    bool add(Json&& v) {
        insert(std::move(v));
        return true;
    }

    bool open(Json&& v) {
        if (stack_.size() >= max_depth_)
            return fail("JSON nested deeper than " + std::to_string(max_depth_) + " levels");
        // Pointers into a parent stay valid: a parent grows only after this child is closed.
        stack_.push_back(insert(std::move(v)));
        return true;
    }

    std::size_t max_depth_;
    Json root_;
    std::vector<Json*> stack_;
    std::vector<std::unordered_set<std::string>> keys_;
    std::string key_;
    std::string error_;
};

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 if invalid (Go's utf8 rules:
// no overlongs, no surrogates, max U+10FFFF).
std::size_t utf8_length(std::string_view s, std::size_t i, char32_t& cp) {
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
    unsigned char c = b(0);
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF && cont(1)) {
        cp = ((c & 0x1Fu) << 6) | (b(1) & 0x3Fu);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
        cp = ((c & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
        cp = ((c & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
        if (cp < 0x10000 || cp > 0x10FFFF) return 0;
        return 4;
    }
    return 0;
}

// Go encoding/json floatEncoder: shortest round-trip digits, 'f' format unless the magnitude is
// below 1e-6 or at least 1e21, then 'e' with a two-digit exponent cleaned to one ("e-07"→"e-7").
void append_float(std::string& out, double f) {
    if (!std::isfinite(f)) throw Error("cannot encode a non-finite number in JSON");
    double a = std::fabs(f);
    bool exp = a != 0 && (a < 1e-6 || a >= 1e21);
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, f,
                           exp ? std::chars_format::scientific : std::chars_format::fixed);
    std::string s(buf, r.ptr);
    if (exp) {
        auto n = s.size();
        if (n >= 4 && s[n - 4] == 'e' && s[n - 3] == '-' && s[n - 2] == '0') s.erase(n - 2, 1);
    }
    out += s;
}

void marshal(std::string& out, const Json& v) {
    switch (v.type()) {
    case nlohmann::json::value_t::null:
        out += "null";
        return;
    case nlohmann::json::value_t::boolean:
        out += v.get<bool>() ? "true" : "false";
        return;
    case nlohmann::json::value_t::number_integer:
        out += std::to_string(v.get<std::int64_t>());
        return;
    case nlohmann::json::value_t::number_unsigned:
        out += std::to_string(v.get<std::uint64_t>());
        return;
    case nlohmann::json::value_t::number_float:
        append_float(out, v.get<double>());
        return;
    case nlohmann::json::value_t::string:
        go_append_string(out, v.get_ref<const std::string&>());
        return;
    case nlohmann::json::value_t::array: {
        out += '[';
        bool first = true;
        for (const auto& e : v) {
            if (!first) out += ',';
            first = false;
            marshal(out, e);
        }
        out += ']';
        return;
    }
    case nlohmann::json::value_t::object: {
        out += '{';
        bool first = true;
        for (const auto& [k, e] : v.items()) {
            if (!first) out += ',';
            first = false;
            go_append_string(out, k);
            out += ':';
            marshal(out, e);
        }
        out += '}';
        return;
    }
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded:
        break;
    }
    throw Error("cannot encode a binary or discarded JSON value");
}

} // namespace

Result<Json> parse_strict_json(std::string_view bytes, const JsonLimits& limits) {
    if (bytes.size() > limits.max_bytes)
        return Unexpected("JSON document of " + std::to_string(bytes.size()) +
                          " bytes is over the limit of " + std::to_string(limits.max_bytes));
    StrictSax sax(limits.max_depth);
    bool ok = false;
    try {
        ok = Json::sax_parse(bytes.begin(), bytes.end(), &sax, nlohmann::json::input_format_t::json,
                             true);
    } catch (const std::exception& e) { // nlohmann may throw out_of_range on odd numbers
        return Unexpected(std::string("invalid JSON: ") + e.what());
    }
    if (!ok) {
        auto msg = sax.error();
        // nlohmann prefixes "[json.exception.parse_error.101] ": keep the human part.
        if (auto p = msg.find("] "); msg.starts_with("[json.exception") && p != std::string::npos)
            msg.erase(0, p + 2);
        return Unexpected("invalid JSON: " + msg);
    }
    return std::move(sax.root());
}

void go_append_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
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
                if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
            }
            ++i;
            continue;
        }
        char32_t cp = 0;
        auto n = utf8_length(s, i, cp);
        if (n == 0) { // Go replaces each invalid byte by U+FFFD
            out += "\\ufffd";
            ++i;
            continue;
        }
        if (cp == 0x2028 || cp == 0x2029) {
            out += cp == 0x2028 ? "\\u2028" : "\\u2029";
        } else {
            out.append(s.substr(i, n));
        }
        i += n;
    }
    out += '"';
}

std::string go_marshal(const Json& value) {
    std::string out;
    marshal(out, value);
    return out;
}

} // namespace factory::oci
