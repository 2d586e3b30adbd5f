#include "factory/oci/json_fields.hpp"

#include <limits>

namespace factory::oci::detail {

void fail(const std::string& path, const std::string& what) {
    throw SchemaError{path.empty() ? what : "\"" + path + "\": " + what};
}

std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string join(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

const Json* member(const Json& obj, std::string_view key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

namespace {

const char* type_name(const Json& v) {
    if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
    if (v.is_number_float()) return "a number";
    if (v.is_string()) return "a string";
    if (v.is_boolean()) return "a boolean";
    if (v.is_array()) return "an array";
    if (v.is_object()) return "an object";
    return "null";
}

} // namespace

const Json& require_object(const Json& v, const std::string& path) {
    if (!v.is_object()) fail(path, std::string("must be an object, not ") + type_name(v));
    return v;
}

std::optional<std::string> opt_string(const Json& obj, std::string_view key,
                                      const std::string& path) {
    auto v = member(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string())
        fail(join(path, key), std::string("must be a string, not ") + type_name(*v));
    return v->get<std::string>();
}

std::string req_string(const Json& obj, std::string_view key, const std::string& path) {
    auto s = opt_string(obj, key, path);
    if (!s) fail(join(path, key), "is required");
    return *s;
}

std::optional<bool> opt_bool(const Json& obj, std::string_view key, const std::string& path) {
    auto v = member(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_boolean())
        fail(join(path, key), std::string("must be a boolean, not ") + type_name(*v));
    return v->get<bool>();
}

std::optional<std::int64_t> opt_int(const Json& obj, std::string_view key, const std::string& path,
                                    std::int64_t min, std::int64_t max) {
    auto v = member(obj, key);
    if (!v) return std::nullopt;
    std::int64_t n = 0;
    // nlohmann's is_number_integer() is also true for unsigned values: test unsigned first.
    if (v->is_number_unsigned()) {
        auto u = v->get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            fail(join(path, key), "is out of range");
        n = static_cast<std::int64_t>(u);
    } else if (v->is_number_integer()) {
        n = v->get<std::int64_t>();
    } else {
        fail(join(path, key), std::string("must be an integer, not ") + type_name(*v));
    }
    if (n < min || n > max)
        fail(join(path, key), std::to_string(n) + " is out of range [" + std::to_string(min) +
                                  ", " + std::to_string(max) + "]");
    return n;
}

std::vector<std::string> opt_string_array(const Json& obj, std::string_view key,
                                          const std::string& path) {
    std::vector<std::string> out;
    auto v = member(obj, key);
    if (!v) return out;
    auto p = join(path, key);
    if (!v->is_array()) fail(p, std::string("must be an array of strings, not ") + type_name(*v));
    for (std::size_t i = 0; i < v->size(); ++i) {
        const auto& e = (*v)[i];
        if (!e.is_string()) fail(join(p, i), std::string("must be a string, not ") + type_name(e));
        out.push_back(e.get<std::string>());
    }
    return out;
}

std::map<std::string, std::string> opt_string_map(const Json& obj, std::string_view key,
                                                  const std::string& path) {
    std::map<std::string, std::string> out;
    auto v = member(obj, key);
    if (!v) return out;
    auto p = join(path, key);
    if (!v->is_object()) fail(p, std::string("must be an object of strings, not ") + type_name(*v));
    for (const auto& [k, e] : v->items()) {
        if (!e.is_string()) fail(join(p, k), std::string("must be a string, not ") + type_name(e));
        out.emplace(k, e.get<std::string>());
    }
    return out;
}

std::vector<std::string> opt_set(const Json& obj, std::string_view key, const std::string& path) {
    std::vector<std::string> out;
    auto v = member(obj, key);
    if (!v) return out;
    auto p = join(path, key);
    if (!v->is_object()) fail(p, std::string("must be an object, not ") + type_name(*v));
    for (const auto& [k, e] : v->items()) {
        if (!e.is_object() && !e.is_null())
            fail(join(p, k), std::string("must be an object ({}), not ") + type_name(e));
        out.push_back(k);
    }
    return out;
}

Json sorted_object(const std::map<std::string, std::string>& m) {
    Json out = Json::object();
    for (const auto& [k, v] : m)
        out[k] = v; // std::map iterates in byte order, as Go sorts
    return out;
}

namespace {
constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}
} // namespace

std::optional<std::string> base64_decode(std::string_view in) {
    if (in.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = in[i + k];
            if (c == '=' && i + 4 == in.size() && k >= 2) {
                v[k] = 0;
                ++pad;
                continue;
            }
            if (pad) return std::nullopt; // data after padding
            v[k] = b64_value(c);
            if (v[k] < 0) return std::nullopt;
        }
        unsigned n = (unsigned(v[0]) << 18) | (unsigned(v[1]) << 12) | (unsigned(v[2]) << 6) |
                     unsigned(v[3]);
        out += static_cast<char>((n >> 16) & 0xFF);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(n & 0xFF);
        // Go's strict decoding rejects non-zero bits in the padding remainder.
        if ((pad == 1 && (n & 0xFF)) || (pad == 2 && (n & 0xFFFF))) return std::nullopt;
    }
    return out;
}

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        unsigned n = (unsigned(static_cast<unsigned char>(in[i])) << 16) |
                     (unsigned(static_cast<unsigned char>(in[i + 1])) << 8) |
                     unsigned(static_cast<unsigned char>(in[i + 2]));
        out += b64[(n >> 18) & 63];
        out += b64[(n >> 12) & 63];
        out += b64[(n >> 6) & 63];
        out += b64[n & 63];
    }
    if (auto rest = in.size() - i; rest > 0) {
        unsigned n = unsigned(static_cast<unsigned char>(in[i])) << 16;
        if (rest == 2) n |= unsigned(static_cast<unsigned char>(in[i + 1])) << 8;
        out += b64[(n >> 18) & 63];
        out += b64[(n >> 12) & 63];
        out += rest == 2 ? b64[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s.substr(0, 120)) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    if (s.size() > 120) out += "...";
    return out + "\"";
}

} // namespace factory::oci::detail
