#include "factory/recipe/source_reader.hpp"

#include "factory/recipe/config_reader.hpp"
#include "factory/recipe/grammar.hpp"
#include "factory/recipe/run_reader.hpp"

#include <algorithm>

namespace factory::recipe::detail {

namespace {

std::string in_quotes(const std::string& s) {
    return "\"" + s + "\"";
}

bool is_hex64(const std::string& s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// A URL of the schemes we fetch: scheme://rest, no space or control character.
std::string read_url(Reader& r, const toml::node& node, const std::string& label,
                     std::initializer_list<std::string_view> schemes) {
    std::string url = r.string(node, label);
    bool ok = std::any_of(schemes.begin(), schemes.end(), [&](std::string_view s) {
        return url.starts_with(std::string(s) + "://") && url.size() > s.size() + 3;
    });
    if (!ok) {
        std::string list;
        for (auto s : schemes)
            list += (list.empty() ? "" : ", ") + std::string(s) + "://";
        r.fail(node, label + ": expected a URL starting with " + list + ", got " + in_quotes(url));
    }
    for (unsigned char c : url)
        if (c < 0x21 || c == 0x7f)
            r.fail(node, label + ": the URL holds a space or a control character");
    return url;
}

// Whether the URL's last path segment, which a dest ending in '/' takes as the file's name
// (builder's url_basename), is one: "http://h/" and "http://h/a/.." have none.
bool has_file_name(std::string_view url) {
    url = url.substr(0, url.find_first_of("?#"));
    auto name = url.substr(url.rfind('/') + 1);
    return !name.empty() && name != "." && name != "..";
}

const toml::node& required(Reader& r, const toml::table& t, const char* key,
                           const std::string& label) {
    const auto* node = t.get(key);
    if (!node) r.fail(t, label + ": needs " + key);
    return *node;
}

} // namespace

GitStep read_git(Reader& r, const toml::node& node, const std::string& label) {
    const auto& t = r.table(node, label);
    r.check_keys(t, label,
                 {"url", "ref", "dest", "submodules", "keep_git", "depth", "mtime", "secret"});
    GitStep g;
    g.where = r.at(node);
    g.url = read_url(r, required(r, t, "url", label), label + ".url",
                     {"https", "http", "git", "ssh", "file"});
    if (const auto* ref = t.get("ref")) {
        g.ref = r.string(*ref, label + ".ref");
        if (g.ref.empty() || g.ref.front() == '-')
            r.fail(*ref, label + ".ref: invalid ref " + in_quotes(g.ref));
    }
    g.dest = read_absolute(r, required(r, t, "dest", label), label + ".dest");
    if (const auto* s = t.get("submodules")) g.submodules = r.boolean(*s, label + ".submodules");
    if (const auto* k = t.get("keep_git")) g.keep_git = r.boolean(*k, label + ".keep_git");
    if (const auto* d = t.get("depth")) {
        auto depth = r.integer(*d, label + ".depth");
        if (depth < 0 || depth > 1'000'000)
            r.fail(*d, label + ".depth: expected 0 (all history) to 1000000");
        if (!g.keep_git) r.fail(*d, label + ".depth: applies with keep_git = true only");
        g.depth = static_cast<int>(depth);
    }
    if (const auto* sec = t.get("secret")) {
        g.secret = r.string(*sec, label + ".secret");
        if (!is_mount_id(g.secret))
            r.fail(*sec, label + ".secret: invalid secret id " + in_quotes(g.secret) +
                             ": expected [A-Za-z0-9][A-Za-z0-9._-]{0,63} without \"..\"");
        if (!g.url.starts_with("https://") && !g.url.starts_with("http://"))
            r.fail(*sec,
                   label +
                       ".secret: applies to https:// and http:// URLs (ssh uses SSH_AUTH_SOCK)");
    }
    if (const auto* m = t.get("mtime")) {
        std::string mtime = r.string(*m, label + ".mtime");
        if (mtime == "commit")
            g.mtime = GitStep::Mtime::commit;
        else if (mtime != "epoch")
            r.fail(*m, label + ".mtime: expected \"epoch\" or \"commit\", got " + in_quotes(mtime));
    }
    return g;
}

DownloadStep read_download(Reader& r, const toml::node& node, const std::string& label) {
    const auto& t = r.table(node, label);
    r.check_keys(t, label, {"url", "sha256", "dest", "mode", "extract"});
    DownloadStep d;
    d.where = r.at(node);
    d.url = read_url(r, required(r, t, "url", label), label + ".url", {"https", "http"});
    const auto& sha_node = required(r, t, "sha256", label);
    d.sha256 = r.string(sha_node, label + ".sha256");
    if (d.sha256.starts_with("sha256:")) d.sha256.erase(0, 7);
    if (!is_hex64(d.sha256))
        r.fail(sha_node,
               label + ".sha256: expected 64 lower-case hex digits, got " + in_quotes(d.sha256));
    const auto& dest_node = required(r, t, "dest", label);
    d.dest = read_absolute(r, dest_node, label + ".dest");
    if (const auto* e = t.get("extract")) d.extract = r.boolean(*e, label + ".extract");
    if (const auto* m = t.get("mode")) {
        if (d.extract) r.fail(*m, label + ".mode: applies to a file, not with extract = true");
        std::string mode =
            r.string(*m, label + ".mode", "write the mode in quotes: mode = \"0755\"");
        bool octal =
            !mode.empty() && mode.size() <= 4 &&
            std::all_of(mode.begin(), mode.end(), [](char c) { return c >= '0' && c <= '7'; });
        if (!octal)
            r.fail(*m, label + ".mode: invalid mode " + in_quotes(mode) +
                           ": expected up to 4 octal digits such as \"0755\"");
        d.mode = static_cast<unsigned>(std::stoul(mode, nullptr, 8)) & 0777;
    }
    if (!d.extract && d.dest == "/")
        r.fail(dest_node,
               label + ".dest: a file can't be \"/\"; end it with the file's name or '/'");
    if (!d.extract && d.dest.ends_with('/') && !has_file_name(d.url))
        r.fail(*t.get("url"), label + ".url: the URL has no file name for dest " +
                                  in_quotes(d.dest) + " to take; end dest with the file's name");
    return d;
}

DepsStep read_deps(Reader& r, const toml::node& node, const std::string& label) {
    const auto& t = r.table(node, label);
    std::vector<std::string> known = {"lockfile", "dest", "run"};
    known.insert(known.end(), run_options().begin(), run_options().end());
    r.check_keys(t, label, known);
    DepsStep d;
    d.where = r.at(node);
    const auto& lock = required(r, t, "lockfile", label);
    std::vector<Located> files;
    if (lock.is_string())
        files.push_back({r.string(lock, label + ".lockfile"), r.at(lock)});
    else
        files = r.strings(lock, label + ".lockfile",
                          "write lockfile = [\"package.json\", \"package-lock.json\"]");
    if (files.empty()) r.fail(lock, label + ".lockfile: needs at least one file");
    for (auto& f : files) {
        const std::string& p = f.value;
        bool bad = p.empty() || p.front() == '/' || p.find_first_of("*?[") != std::string::npos ||
                   p == ".." || p.starts_with("../") || p.find("/../") != std::string::npos ||
                   p.ends_with("/..") || p.ends_with("/");
        if (bad)
            r.fail(
                f.where,
                label + ".lockfile: " + in_quotes(p) +
                    " must be a relative path to a file of the context, without a glob or \"..\"");
        d.lockfiles.push_back(std::move(f.value));
    }
    d.dest = read_absolute(r, required(r, t, "dest", label), label + ".dest");
    required(r, t, "run", label);
    d.run = read_run(r, t, label);
    if (d.run.workdir.empty()) d.run.workdir = d.dest;
    return d;
}

} // namespace factory::recipe::detail
