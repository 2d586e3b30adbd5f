#include "factory/builder/step_cache.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "factory/util/error.hpp"
#include "factory/util/sha256.hpp"

namespace factory::builder {

namespace {

using layer::Entry;

const char* type_word(Entry::Type t) {
    switch (t) {
    case Entry::Type::file:
        return "file";
    case Entry::Type::dir:
        return "dir";
    case Entry::Type::symlink:
        return "symlink";
    case Entry::Type::hardlink:
        return "hardlink";
    }
    return "?";
}

std::string short_hash(const std::string& hex) {
    return hex.substr(0, 12) + "…";
}

// "uid:gid:mode", as "%u:%u:%04o" would print it; by hand, since it runs once per copied file.
std::string owner_mode(const Entry& e) {
    char buf[40];
    char* end = buf + sizeof buf;
    char* p = end;
    unsigned mode = e.mode;
    for (int digits = 0; digits < 4 || mode != 0; ++digits, mode >>= 3)
        *--p = static_cast<char>('0' + (mode & 7));
    for (std::uint32_t id : {e.gid, e.uid}) {
        *--p = ':';
        do
            *--p = static_cast<char>('0' + id % 10);
        while (id /= 10);
    }
    return std::string(p, end);
}

} // namespace

std::vector<cache::InputFile> hash_inputs(const std::vector<Entry>& entries,
                                          cache::StatCache& stat_cache, unsigned threads,
                                          const std::vector<struct stat>* stats) {
    if (stats && stats->size() != entries.size()) stats = nullptr;
    std::vector<cache::InputFile> inputs(entries.size());
    std::vector<std::size_t> to_hash;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const Entry& e = entries[i];
        auto& in = inputs[i];
        in.path = "/" + e.path;
        in.type = type_word(e.type);
        in.exec = (e.mode & 0111) != 0;
        in.link = e.link;
        in.owner_mode = owner_mode(e);
        if (e.type != Entry::Type::file) continue;
        if (e.source.empty()) {
            // In memory, or still in another stage's layer with its digest known (copy.hpp
            // CopyContext::content_later).
            in.sha256 = e.data.empty() && !e.sha256.empty() ? e.sha256 : Sha256::hex(e.data);
            continue;
        }
        if (stats && (*stats)[i].st_mode != 0)
            if (auto hex = stat_cache.get(e.source, (*stats)[i])) {
                in.sha256 = std::move(*hex);
                continue;
            }
        to_hash.push_back(i);
    }
    // Most files hit the stat cache; the misses are read in parallel.
    std::atomic<std::size_t> next{0};
    std::string failure;
    std::mutex failure_mutex;
    auto work = [&] {
        for (;;) {
            std::size_t k = next++;
            if (k >= to_hash.size()) return;
            std::size_t i = to_hash[k];
            auto hex = cache::hash_file_cached(stat_cache, entries[i].source);
            if (!hex) {
                std::lock_guard lock(failure_mutex);
                if (failure.empty()) failure = hex.error();
                return;
            }
            inputs[i].sha256 = *hex;
        }
    };
    unsigned n = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
    n = static_cast<unsigned>(std::min<std::size_t>(n, to_hash.size() / 64 + 1));
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < n; ++t)
        pool.emplace_back(work);
    work();
    for (auto& t : pool)
        t.join();
    if (!failure.empty()) throw Error("cannot hash a copy source: " + failure);
    return inputs;
}

std::vector<std::string> explain_miss(const cache::Fields& now,
                                      const std::vector<cache::InputFile>& inputs_now,
                                      const std::optional<cache::ActionRecord>& last,
                                      bool parent_missed,
                                      const std::map<std::string, std::string>& sources) {
    auto name = [&](const std::string& p) {
        auto it = sources.find(p);
        return it == sources.end() ? p : it->second + " → " + p;
    };
    if (!last) return {"never built before (no record of this step in the store)"};
    std::vector<std::string> out;
    for (const auto& change : cache::diff_fields(last->fields, now)) {
        if (change.tag == "parent") {
            out.push_back(parent_missed ? "the step before it changed"
                                        : "its base changed (" + change.before.value_or("none") +
                                              " → " + change.after.value_or("none") + ")");
        } else if (change.tag == "inputs") {
            auto d = cache::diff_inputs(last->inputs, inputs_now);
            std::map<std::string, const cache::InputFile*> before, after;
            for (const auto& f : last->inputs)
                before[f.path] = &f;
            for (const auto& f : inputs_now)
                after[f.path] = &f;
            for (const auto& p : d.changed) {
                const auto* b = before[p];
                const auto* a = after[p];
                if (b && a && b->sha256 != a->sha256)
                    out.push_back(name(p) + " changed (sha256 " + short_hash(b->sha256) + " → " +
                                  short_hash(a->sha256) + ")");
                else if (b && a && b->type != a->type)
                    out.push_back(p + " changed type (" + b->type + " → " + a->type + ")");
                else if (b && a && b->link != a->link)
                    out.push_back(p + " link target changed (" + b->link + " → " + a->link + ")");
                else if (b && a)
                    out.push_back(p + " changed owner/mode (" + b->owner_mode + " → " +
                                  a->owner_mode + ")");
            }
            for (const auto& p : d.added)
                out.push_back(name(p) + " added");
            for (const auto& p : d.removed)
                out.push_back(p + " removed");
            if (d.empty() && last->inputs.empty() && last->input_count > 0)
                out.push_back("its input files changed (the earlier list is no longer stored)");
        } else {
            out.push_back(change.tag + " changed ('" + change.before.value_or("") + "' → '" +
                          change.after.value_or("") + "')");
        }
    }
    if (out.empty()) out.push_back("its earlier result is no longer in the store (pruned)");
    return out;
}

std::string step_identity(const std::filesystem::path& recipe, const std::string& stage,
                          std::size_t index) {
    Sha256 h;
    h.update(recipe.string());
    h.update("\0", 1);
    h.update(stage);
    h.update("\0", 1);
    h.update(std::to_string(index));
    return h.hex_digest();
}

} // namespace factory::builder
