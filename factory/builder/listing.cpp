// Listings as bytes (tree.hpp serialize_listing, parse_listing; docs/cache.md "Listings").
//
//   body    = "tree-entries/1 limits " MAX_BYTES " " RATIO_AFTER " " MAX_RATIO "\n"
//             varint(count) entry*
//   entry   = type(1 byte: 0 file, 1 dir, 2 symlink, 3 hardlink) varint(mode) varint(uid)
//             varint(gid) varint(size) varint(ordinal) bytes(path) bytes(link)
//             bytes(sha256: 64 lower-case hex of the content, files only; empty when unknown)
//             varint(xattrs) (bytes(name) bytes(value))*
//   bytes   = varint(length) the bytes
//   varint  = LEB128: 7 bits a byte, low first, the high bit set on all but the last
//
// Binary, because paths, link targets and xattr values are bytes, not text. "tree-entries/1"
// names what the tree reads of a tar entry (tree.cpp entry_of); a change there is a new word.

#include "factory/builder/tree.hpp"

#include <cstdint>
#include <limits>

namespace factory::builder {

namespace {

using layer::Entry;

constexpr std::string_view format_word = "tree-entries/1";
constexpr std::uint64_t max_entries = 1'000'000; // the tree's cap on one layer (tree.cpp)

std::string limits_line(const runtime::StreamLimits& limits) {
    return std::string(format_word) + " limits " + std::to_string(limits.max_bytes) + " " +
           std::to_string(limits.ratio_after) + " " + std::to_string(limits.max_ratio) + "\n";
}

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out += static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    out += static_cast<char>(v);
}

void put_bytes(std::string& out, std::string_view s) {
    put_varint(out, s.size());
    out += s;
}

// Reads the body front to back; the first problem sticks, with the offset it was met at.
class Reader {
  public:
    explicit Reader(std::string_view body, std::size_t start) : body_(body), at_(start) {}

    std::uint64_t varint(const char* what) {
        std::uint64_t v = 0;
        for (unsigned shift = 0;; shift += 7) {
            if (at_ >= body_.size()) {
                fail(what, "ends inside a number");
                return 0;
            }
            auto byte = static_cast<unsigned char>(body_[at_++]);
            if (shift == 63 && byte > 1) {
                fail(what, "number too large");
                return 0;
            }
            v |= std::uint64_t{byte & 0x7fu} << shift;
            if (!(byte & 0x80)) {
                // One spelling per number: no trailing zero groups.
                if (byte == 0 && shift != 0) {
                    fail(what, "number not in its shortest form");
                    return 0;
                }
                return v;
            }
        }
    }

    std::string bytes(const char* what) {
        auto n = varint(what);
        if (error_) return {};
        if (n > body_.size() - at_) {
            fail(what, "runs past the end");
            return {};
        }
        std::string out(body_.substr(at_, n));
        at_ += n;
        return out;
    }

    unsigned char byte(const char* what) {
        if (at_ >= body_.size()) {
            fail(what, "missing");
            return 0;
        }
        return static_cast<unsigned char>(body_[at_++]);
    }

    void fail(const char* what, const std::string& why) {
        if (!error_) error_ = "byte " + std::to_string(at_) + ": " + what + ": " + why;
    }

    bool at_end() const { return at_ == body_.size(); }
    const std::optional<std::string>& error() const { return error_; }

  private:
    std::string_view body_;
    std::size_t at_;
    std::optional<std::string> error_;
};

} // namespace

std::string serialize_listing(const LayerListing& listing, const runtime::StreamLimits& limits) {
    std::string out = limits_line(limits);
    put_varint(out, listing.entries.size());
    for (std::size_t i = 0; i < listing.entries.size(); ++i) {
        const Entry& e = listing.entries[i];
        out += static_cast<char>(e.type);
        put_varint(out, e.mode);
        put_varint(out, e.uid);
        put_varint(out, e.gid);
        put_varint(out, e.size);
        put_varint(out, listing.ordinals[i]);
        put_bytes(out, e.path);
        put_bytes(out, e.link);
        put_bytes(out, e.sha256);
        put_varint(out, e.xattrs.size());
        for (const auto& [name, value] : e.xattrs) {
            put_bytes(out, name);
            put_bytes(out, value);
        }
    }
    return out;
}

Result<LayerListing> parse_listing(std::string_view body, const runtime::StreamLimits& limits) {
    auto nl = body.find('\n');
    if (nl == std::string_view::npos || !body.starts_with(format_word))
        return Unexpected("not a tree listing (no \"" + std::string(format_word) + "\" line)");
    if (body.substr(0, nl + 1) != limits_line(limits))
        return Unexpected("made under other reader limits (\"" +
                          std::string(body.substr(0, std::min<std::size_t>(nl, 120))) + "\")");
    Reader in(body, nl + 1);
    LayerListing listing;
    auto count = in.varint("entry count");
    if (!in.error() && count > max_entries) in.fail("entry count", "more than a layer may hold");
    constexpr auto u32 = std::numeric_limits<std::uint32_t>::max();
    std::uint64_t last_ordinal = 0;
    for (std::uint64_t i = 0; i < count && !in.error(); ++i) {
        Entry e;
        auto type = in.byte("type");
        if (type > static_cast<unsigned char>(Entry::Type::hardlink)) in.fail("type", "unknown");
        e.type = static_cast<Entry::Type>(type);
        auto mode = in.varint("mode");
        if (mode > 07777) in.fail("mode", "not permission bits");
        e.mode = static_cast<unsigned>(mode);
        auto uid = in.varint("uid"), gid = in.varint("gid");
        if (uid > u32 || gid > u32) in.fail("owner", "past 32 bits");
        e.uid = static_cast<std::uint32_t>(uid);
        e.gid = static_cast<std::uint32_t>(gid);
        e.size = in.varint("size");
        auto ordinal = in.varint("ordinal");
        if (!in.error() && ordinal <= last_ordinal) in.fail("ordinal", "not after the last one");
        last_ordinal = ordinal;
        e.path = in.bytes("path");
        if (!in.error())
            if (auto ok = layer::check_path(e.path); !ok) in.fail("path", ok.error());
        e.link = in.bytes("link");
        if (!in.error() && e.type == Entry::Type::hardlink)
            if (auto ok = layer::check_path(e.link); !ok) in.fail("hardlink target", ok.error());
        e.sha256 = in.bytes("sha256");
        if (!in.error() && !e.sha256.empty() &&
            (e.type != Entry::Type::file || e.sha256.size() != 64 ||
             e.sha256.find_first_not_of("0123456789abcdef") != std::string::npos))
            in.fail("sha256", "not the 64 hex digits of a file's content");
        auto xattrs = in.varint("xattr count");
        if (!in.error() && xattrs > body.size()) in.fail("xattr count", "runs past the end");
        for (std::uint64_t x = 0; x < xattrs && !in.error(); ++x) {
            auto name = in.bytes("xattr name");
            auto value = in.bytes("xattr value");
            e.xattrs.emplace_back(std::move(name), std::move(value));
        }
        listing.entries.push_back(std::move(e));
        listing.ordinals.push_back(ordinal);
    }
    if (!in.error() && !in.at_end()) in.fail("end", "bytes after the last entry");
    if (in.error()) return Unexpected(*in.error());
    return listing;
}

} // namespace factory::builder
