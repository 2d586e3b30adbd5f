#include "factory/sources/debian.hpp"

#include "factory/runtime/changeset.hpp"
#include "factory/runtime/process.hpp"
#include "factory/util/fd.hpp"
#include "factory/util/files.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <fcntl.h>
#include <map>
#include <poll.h>
#include <set>
#include <signal.h>
#include <sstream>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

namespace factory::sources {

namespace {

const std::string fallback_mirror = "http://deb.debian.org/debian";

// --- grammars: nothing reaches mmdebstrap's command line that could read as an option ----------

bool is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool lower_word(std::string_view s, std::string_view extra, std::size_t min = 1) {
    return s.size() >= min && s.size() <= 128 && is_lower_alnum(s[0]) &&
           std::all_of(s.begin(), s.end(), [&](char c) {
               return is_lower_alnum(c) || extra.find(c) != std::string_view::npos;
           });
}

bool is_http_url(std::string_view url) {
    std::string_view rest;
    if (url.starts_with("http://"))
        rest = url.substr(7);
    else if (url.starts_with("https://"))
        rest = url.substr(8);
    else
        return false;
    if (rest.empty() || rest[0] == '/' || rest[0] == ':' || rest[0] == '@') return false;
    return std::all_of(url.begin(), url.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u != 0x7f && c != ',';
    });
}

const std::vector<std::string> variants = {"minbase",  "buildd",    "apt",     "essential",
                                           "required", "important", "standard"};

// A value in a message: in double quotes, '"', '\\' and control characters escaped, cut at 80.
std::string in_quotes(std::string_view s) {
    std::string out = "\"";
    for (char c : s.substr(0, 80)) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", u);
            out += hex;
        } else {
            out += c;
        }
    }
    return out + (s.size() > 80 ? "…\"" : "\"");
}

Result<void> check_spec(const DebianSpec& spec, const std::string& mirror) {
    if (!lower_word(spec.suite, "-")) return Unexpected("invalid suite " + in_quotes(spec.suite));
    if (std::find(variants.begin(), variants.end(), spec.variant) == variants.end())
        return Unexpected("invalid variant " + in_quotes(spec.variant));
    for (const auto& p : spec.include)
        if (!lower_word(p, "+.-", 2)) return Unexpected("invalid package name " + in_quotes(p));
    if (spec.components.empty()) return Unexpected("no component");
    for (const auto& c : spec.components)
        if (!lower_word(c, "-")) return Unexpected("invalid component " + in_quotes(c));
    if (!spec.architecture.empty() && !lower_word(spec.architecture, ""))
        return Unexpected("invalid architecture " + in_quotes(spec.architecture));
    if (!is_http_url(mirror)) return Unexpected("invalid mirror " + in_quotes(mirror));
    for (const auto& o : spec.aptopts)
        if (o.empty() || o.find_first_of(std::string("\n\r\0", 3)) != std::string::npos)
            return Unexpected("invalid apt option " + in_quotes(o));
    return {};
}

std::string join(const std::vector<std::string>& items, char sep) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) out += sep;
        out += i;
    }
    return out;
}

// --- the host's apt sources --------------------------------------------------------------------

struct Source {
    std::string uri;
    std::vector<std::string> suites;
};

std::vector<std::string> words(std::string_view line) {
    std::vector<std::string> out;
    std::istringstream in{std::string(line)};
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

// sources.list(5) one-line style: deb [ option=value … ] uri suite [component …]
void parse_one_line(const std::string& text, std::vector<Source>& out) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        line = line.substr(0, line.find('#'));
        auto w = words(line);
        if (w.empty() || w[0] != "deb") continue;
        std::size_t i = 1;
        if (i < w.size() && w[i].starts_with('[')) {
            while (i < w.size() && !w[i].ends_with(']'))
                ++i;
            ++i;
        }
        if (i + 1 >= w.size()) continue;
        out.push_back(Source{w[i], {w[i + 1]}});
    }
}

std::string lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

// sources.list(5) deb822 style: stanzas of Types, URIs, Suites, Enabled … (field names are
// case-insensitive; a line starting with a space continues the field).
void parse_deb822(const std::string& text, std::vector<Source>& out) {
    std::map<std::string, std::string> fields;
    std::string last;
    auto flush = [&] {
        auto types = words(fields["types"]);
        bool deb = std::find(types.begin(), types.end(), "deb") != types.end();
        auto enabled = words(lower(fields["enabled"]));
        if (deb && (enabled.empty() || enabled[0] != "no"))
            for (const auto& uri : words(fields["uris"]))
                out.push_back(Source{uri, words(fields["suites"])});
        fields.clear();
        last.clear();
    };
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with('#')) continue;
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
            flush();
            continue;
        }
        if ((line[0] == ' ' || line[0] == '\t') && !last.empty()) {
            fields[last] += " " + line;
            continue;
        }
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        last = lower(line.substr(0, colon));
        fields[last] = line.substr(colon + 1);
    }
    flush();
}

std::vector<Source> host_sources(const fs::path& host_root) {
    std::vector<Source> sources;
    fs::path etc = host_root / "etc/apt";
    if (auto text = read_file(etc / "sources.list", 1 << 20)) parse_one_line(*text, sources);
    std::vector<fs::path> parts;
    std::error_code ec;
    for (fs::directory_iterator it(etc / "sources.list.d", ec), end; !ec && it != end;
         it.increment(ec))
        parts.push_back(it->path());
    std::sort(parts.begin(), parts.end());
    for (const auto& p : parts) {
        auto text = read_file(p, 1 << 20);
        if (!text) continue;
        if (p.extension() == ".list") parse_one_line(*text, sources);
        if (p.extension() == ".sources") parse_deb822(*text, sources);
    }
    std::erase_if(sources, [](const Source& s) { return !is_http_url(s.uri); });
    return sources;
}

// --- running mmdebstrap ------------------------------------------------------------------------

// One lookup of programs for every module (runtime/process.hpp); "" when there is none.
std::string find_program(const std::string& name) {
    return runtime::find_program(name).string();
}

// Passes the child's lines on to the callback and remembers the last few, for the error
// message.
struct LineTail {
    const runtime::OutputCallback& on_line;
    std::deque<std::string> tail;

    void line(std::string text) {
        if (!text.empty() && text.back() == '\r') text.pop_back();
        if (on_line) on_line(text);
        tail.push_back(std::move(text));
        if (tail.size() > 20) tail.pop_front();
    }
    // mmdebstrap's own error ("E: …"), else the last line.
    std::string reason() const {
        for (auto it = tail.rbegin(); it != tail.rend(); ++it)
            if (it->starts_with("E: ")) return *it;
        return tail.empty() ? "no output" : tail.back();
    }
};

Result<fs::path> fresh_dir(const fs::path& work_dir) {
    std::error_code ec;
    fs::create_directories(work_dir, ec);
    if (ec) return Unexpected("cannot create " + work_dir.string() + ": " + ec.message());
    std::string templ = (work_dir / "debian-XXXXXX").string();
    if (!::mkdtemp(templ.data()))
        return Unexpected("cannot create a directory in " + work_dir.string() + ": " +
                          errno_string(errno));
    ::chmod(templ.c_str(), 0755);
    return fs::path(templ);
}

void remove_tree(const fs::path& dir) {
    std::error_code ec;
    fs::remove_all(dir, ec);
}

// --- entries -----------------------------------------------------------------------------------

bool under(std::string_view path, std::string_view dir) {
    return path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/';
}

std::string_view base_name(std::string_view path) {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

enum class Verdict { keep, drop, empty };

Verdict judge(const layer::Entry& e) {
    if (under(e.path, "dev")) return Verdict::drop;
    if (e.type == layer::Entry::Type::dir) return Verdict::keep;
    if (e.path == "etc/hostname" || e.path == "etc/resolv.conf") return Verdict::drop;
    if (under(e.path, "run") || under(e.path, "tmp")) return Verdict::drop;
    if (runtime::is_noise(e.path)) return Verdict::drop;
    if (e.path == "etc/machine-id" && e.type == layer::Entry::Type::file) return Verdict::empty;
    return Verdict::keep;
}

// Applies judge() to diff_upper's entries. A hardlink whose target was dropped takes the
// target's place (the first such link becomes the file; later ones link to it).
std::vector<layer::Entry> normalize_base(std::vector<layer::Entry> entries) {
    std::map<std::string, layer::Entry> dropped_files;
    std::map<std::string, std::string> moved; // dropped target → the link that replaced it
    std::vector<layer::Entry> out;
    out.reserve(entries.size());
    for (auto& e : entries) {
        auto verdict = judge(e);
        if (verdict == Verdict::drop) {
            if (e.type == layer::Entry::Type::file) dropped_files.emplace(e.path, std::move(e));
            continue;
        }
        if (verdict == Verdict::empty) {
            e.source.clear();
            e.data.clear();
            e.size = 0;
        }
        if (e.type == layer::Entry::Type::hardlink && !dropped_files.empty()) {
            if (auto m = moved.find(e.link); m != moved.end()) {
                e.link = m->second;
            } else if (auto d = dropped_files.find(e.link); d != dropped_files.end()) {
                std::string path = std::move(e.path);
                e = d->second;
                moved.emplace(e.path, path);
                e.path = std::move(path);
            }
        }
        out.push_back(std::move(e));
    }
    return out;
}

// --- dpkg status -------------------------------------------------------------------------------

struct Package {
    std::string name, version, arch, status;
};

std::vector<Package> read_status(const std::string& text) {
    std::vector<Package> packages;
    Package p;
    auto flush = [&] {
        if (!p.name.empty()) packages.push_back(p);
        p = Package{};
    };
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) {
            flush();
            continue;
        }
        if (line[0] == ' ' || line[0] == '\t') continue;
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = line.substr(0, colon);
        auto value = line.substr(colon + 1);
        auto first = value.find_first_not_of(" \t");
        value = first == std::string::npos ? "" : value.substr(first);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\r'))
            value.pop_back();
        if (key == "Package") p.name = value;
        if (key == "Version") p.version = value;
        if (key == "Architecture") p.arch = value;
        if (key == "Status") p.status = value;
    }
    flush();
    return packages;
}

} // namespace

std::string default_mirror(const std::string& suite, const fs::path& host_root) {
    auto sources = host_sources(host_root);
    for (const auto& s : sources)
        if (std::find(s.suites.begin(), s.suites.end(), suite) != s.suites.end()) return s.uri;
    for (const auto& s : sources) {
        std::string_view uri = s.uri;
        while (uri.ends_with('/'))
            uri.remove_suffix(1);
        if (uri.ends_with("/debian")) return s.uri;
    }
    return fallback_mirror;
}

std::string resolve_mirror(const DebianSpec& spec, const fs::path& host_root) {
    return spec.mirror.empty() ? default_mirror(spec.suite, host_root) : spec.mirror;
}

Result<std::vector<std::string>> mmdebstrap_args(const DebianSpec& spec, const fs::path& target,
                                                 const std::string& mirror) {
    if (auto ok = check_spec(spec, mirror); !ok) return Unexpected(ok.error());
    std::vector<std::string> args = {"--mode=root", "--format=directory",
                                     "--variant=" + spec.variant};
    if (!spec.include.empty()) {
        std::set<std::string> include(spec.include.begin(), spec.include.end());
        args.push_back("--include=" + join({include.begin(), include.end()}, ','));
    }
    args.push_back("--components=" + join(spec.components, ','));
    if (!spec.architecture.empty()) args.push_back("--architectures=" + spec.architecture);
    for (const auto& o : spec.aptopts)
        args.push_back("--aptopt=" + o);
    args.insert(args.end(), {"--", spec.suite, target.string(), mirror});
    return args;
}

Result<DebianRootfs> bootstrap_debian(const DebianSpec& spec, const fs::path& work_dir,
                                      std::int64_t source_date_epoch,
                                      runtime::OutputCallback on_line,
                                      const BootstrapControl& control) {
    if (::geteuid() != 0)
        return Unexpected("bootstrapping a Debian base needs root (mmdebstrap --mode=root)");
    if (source_date_epoch < 0) return Unexpected("SOURCE_DATE_EPOCH must not be negative");
    std::string mmdebstrap =
        control.mmdebstrap.empty() ? find_program("mmdebstrap") : control.mmdebstrap.string();
    if (mmdebstrap.empty() || ::access(mmdebstrap.c_str(), X_OK) != 0)
        return Unexpected("mmdebstrap is not installed (apt-get install mmdebstrap)");
    std::string unshare = find_program("unshare");
    if (unshare.empty()) return Unexpected("unshare (util-linux) is not installed");

    DebianRootfs rootfs;
    rootfs.mirror = resolve_mirror(spec);
    auto dir = fresh_dir(work_dir);
    if (!dir) return Unexpected(dir.error());
    rootfs.dir = *dir;
    auto args = mmdebstrap_args(spec, rootfs.dir, rootfs.mirror);
    if (!args) {
        remove_tree(rootfs.dir);
        return Unexpected("debian base: " + args.error());
    }
    // unshare: private mounts and pids, so that whatever mmdebstrap mounts in the tree and
    // whatever it starts ends with it (--kill-child: also when we kill unshare). sh only sets
    // the umask; env sets the variables. No word of it is a shell string but the fixed script.
    rootfs.command = {unshare,
                      "--mount",
                      "--propagation",
                      "private",
                      "--pid",
                      "--fork",
                      "--kill-child=SIGKILL",
                      "--",
                      "/bin/sh",
                      "-c",
                      "umask 022 && exec \"$@\"",
                      "sh",
                      "/usr/bin/env",
                      "-u",
                      "LANG",
                      "-u",
                      "LANGUAGE",
                      "LC_ALL=C",
                      "TZ=UTC",
                      "SOURCE_DATE_EPOCH=" + std::to_string(source_date_epoch),
                      mmdebstrap};
    rootfs.command.insert(rootfs.command.end(), args->begin(), args->end());

    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        remove_tree(rootfs.dir);
        return Unexpected("pipe: " + errno_string(errno));
    }
    Fd rd(p[0]), wr(p[1]);
    runtime::SpawnOptions options;
    options.argv = rootfs.command;
    options.stdout_fd = options.stderr_fd = wr.get();
    auto pid = runtime::spawn(options);
    wr.reset();
    if (!pid) {
        remove_tree(rootfs.dir);
        return Unexpected(pid.error());
    }
    LineTail lines{on_line, {}};
    // On cancel, unshare(1) dies, and its --kill-child takes the whole pid namespace with it.
    bool cancelled = runtime::pump_lines(
        rd.get(), control.cancel, [&] { ::kill(*pid, SIGKILL); },
        [&](std::string_view line) { lines.line(std::string(line)); });
    auto status = runtime::wait_exit(*pid);
    if (!status || *status != 0 || cancelled) {
        remove_tree(rootfs.dir);
        if (cancelled) return Unexpected("mmdebstrap " + spec.suite + ": cancelled");
        if (!status) return Unexpected(status.error());
        return Unexpected("mmdebstrap " + spec.suite + " failed (exit code " +
                          std::to_string(*status) + "): " + lines.reason());
    }
    return rootfs;
}

Result<std::vector<layer::Entry>> debian_entries(const fs::path& dir, std::int64_t epoch,
                                                 const SkipCallback& on_skip) {
    runtime::NormalizeOptions options;
    options.drop_noise = false; // judge() applies the base's own rules
    options.epoch = epoch;
    options.on_skip = [&](const std::string& path, const std::string& why) {
        if (!under(path, "dev") && on_skip) on_skip(path, why);
    };
    auto entries = runtime::diff_upper(dir, options);
    if (!entries) return Unexpected(entries.error());
    auto out = normalize_base(std::move(*entries));
    for (const auto& e : out)
        if (base_name(e.path).starts_with(".wh."))
            return Unexpected(dir.string() + ": " + e.path +
                              ": a base file system can't hold a whiteout name (\".wh.\")");
    auto sorted = layer::sort_entries(std::move(out));
    if (!sorted) return Unexpected(dir.string() + ": " + sorted.error());
    return sorted;
}

Result<std::string> resolved_packages(const fs::path& dir) {
    auto status = read_file(dir / "var/lib/dpkg/status", 256u << 20);
    if (!status) return Unexpected("cannot read the package list: " + status.error());
    std::string native;
    if (auto arch = read_file(dir / "var/lib/dpkg/arch", 1 << 16))
        native = arch->substr(0, arch->find('\n'));
    std::vector<std::string> lines;
    for (const auto& p : read_status(*status)) {
        if (p.status != "install ok installed") continue;
        if (p.version.empty())
            return Unexpected("var/lib/dpkg/status: package " + p.name + " has no version");
        bool foreign = !p.arch.empty() && p.arch != "all" && !native.empty() && p.arch != native;
        lines.push_back(p.name + (foreign ? ":" + p.arch : "") + "=" + p.version + "\n");
    }
    std::sort(lines.begin(), lines.end());
    lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
    std::string out;
    for (const auto& l : lines)
        out += l;
    return out;
}

} // namespace factory::sources
