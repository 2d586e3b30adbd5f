#include "factory/recipe/expand.hpp"

#include "factory/recipe/grammar.hpp"
#include "factory/recipe/suggest.hpp"
#include "factory/util/error.hpp"

#include <vector>

namespace factory::recipe::detail {

namespace {

[[noreturn]] void unknown_arg(const std::string& name,
                              const std::map<std::string, std::string>& args,
                              const std::string& where) {
    std::vector<std::string> names;
    for (const auto& [declared, value] : args)
        names.push_back(declared);
    std::string message = where + "unknown arg ${" + name + "}";
    if (auto guess = closest(name, names); !guess.empty())
        message += "; did you mean ${" + guess + "}?";
    else
        message += " (declared: " + join_list(names) + ")";
    throw usage_error(std::move(message));
}

} // namespace

std::string expand_args(std::string_view text, const std::map<std::string, std::string>& args,
                        std::size_t max_size, const std::string& where, ArgRefs refs) {
    bool strict = refs == ArgRefs::strict;
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
        auto dollar = text.find('$', i);
        out.append(text.substr(i, dollar - i));
        if (dollar == std::string_view::npos) break;
        i = dollar;
        if (text.substr(i).starts_with("$${")) {
            out += "${";
            i += 3;
        } else if (text.substr(i).starts_with("${")) {
            auto close = text.find('}', i + 2);
            auto name = close == std::string_view::npos ? std::string_view()
                                                        : text.substr(i + 2, close - i - 2);
            auto found = is_arg_name(name) ? args.find(std::string(name)) : args.end();
            if (!strict && found == args.end()) {
                // Not ours: the shell's ${HOME}, ${A:-x}, or a lone "${".
                out += "${";
                i += 2;
                continue;
            }
            if (close == std::string_view::npos)
                throw usage_error(where + "unterminated ${ (write $${ for a literal ${)");
            if (!is_arg_name(name))
                throw usage_error(where + "invalid arg reference " +
                                  quote("${" + std::string(name) + "}") +
                                  ": expected ${NAME} with NAME made of letters, digits and _ "
                                  "(write $${ for a literal ${)");
            if (found == args.end()) unknown_arg(std::string(name), args, where);
            out += found->second;
            i = close + 1;
        } else {
            out += '$';
            ++i;
        }
        if (out.size() > max_size)
            throw usage_error(where + "expands to more than " + std::to_string(max_size) +
                              " bytes");
    }
    if (out.size() > max_size)
        throw usage_error(where + "expands to more than " + std::to_string(max_size) + " bytes");
    return out;
}

} // namespace factory::recipe::detail
