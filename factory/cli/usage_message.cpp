#include "factory/cli/usage_message.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <vector>

namespace factory::cli {

namespace {

// The command the error belongs to: the last subcommand parsed, level by level.
const CLI::App& failing_command(const CLI::App& app) {
    const CLI::App* cur = &app;
    while (!cur->get_subcommands().empty())
        cur = cur->get_subcommands().back();
    return *cur;
}

// "cache export" for that subcommand of app; "" for app itself.
std::string command_path(const CLI::App& cmd) {
    std::string path;
    for (const CLI::App* c = &cmd; c->get_parent(); c = c->get_parent())
        path = c->get_name() + (path.empty() ? "" : " " + path);
    return path;
}

// What follows CLI11's "PREFIX" in its message ("" when the message does not start so).
std::string after(const std::string& message, const std::string& prefix) {
    return message.starts_with(prefix) ? message.substr(prefix.size()) : "";
}

// A positional as its docs write it: "recipes" → "RECIPE", "ref" → "REF".
std::string argument_name(const CLI::App& cmd, const std::string& name) {
    const CLI::Option* opt = cmd.get_option_no_throw(name);
    if (!opt || !opt->get_positional()) return name;
    std::string upper = name;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (opt->get_items_expected_max() > 1 && upper.size() > 1 && upper.ends_with('S'))
        upper.pop_back(); // several RECIPE…
    return upper;
}

std::string subcommand_list(const CLI::App& cmd) {
    std::string list;
    for (const CLI::App* sub : cmd.get_subcommands([](const CLI::App*) { return true; }))
        list += (list.empty() ? "" : ", ") + sub->get_name();
    return list;
}

// "The following argument(s) ... expected: a b" → the first of them.
std::string first_extra(const std::string& message) {
    auto colon = message.find(": ");
    if (colon == std::string::npos) return "";
    auto rest = message.substr(colon + 2);
    return rest.substr(0, rest.find(' '));
}

// By type, not get_name(): CLI11 names some errors after the subcommand they happened in.
template <class Kind> bool is(const CLI::ParseError& error) {
    return dynamic_cast<const Kind*>(&error) != nullptr;
}

// The message's what, before the command and hint are added.
std::string what(const CLI::App& cmd, const CLI::ParseError& error) {
    std::string message = error.what();
    bool required = is<CLI::RequiredError>(error);
    if (required && (message.starts_with("A subcommand is required") ||
                     message.starts_with("Requires at least"))) {
        auto left = cmd.remaining();
        if (!left.empty() && !left.front().starts_with("-"))
            return "unknown command '" + left.front() + "' (" + subcommand_list(cmd) + ")";
        return "no command given (" + subcommand_list(cmd) + ")";
    }
    if (required && message.ends_with(" is required"))
        return "missing " + argument_name(cmd, message.substr(0, message.size() - 12));
    if (is<CLI::ExtrasError>(error)) {
        auto arg = first_extra(message);
        if (arg.starts_with("-")) return "unknown option '" + arg + "'";
        return "unexpected argument '" + arg + "'";
    }
    if (is<CLI::ArgumentMismatch>(error) && message.ends_with(" missing"))
        return message.substr(0, message.find(": ")) + " needs a value";
    if (is<CLI::ConversionError>(error)) {
        // "Could not convert: --jobs = abc"
        if (auto rest = after(message, "Could not convert: "); !rest.empty()) {
            auto eq = rest.find(" = ");
            if (eq != std::string::npos) {
                const CLI::Option* opt = cmd.get_option_no_throw(rest.substr(0, eq));
                std::string type = opt ? opt->get_type_name() : "";
                return rest.substr(0, eq) + " " + rest.substr(eq + 3) + ": expected " +
                       (type == "INT" || type == "UINT" ? "an integer"
                        : type == "FLOAT"               ? "a number"
                                                        : "another value");
            }
        }
    }
    return message;
}

// True when the unknown option `arg` comes before the first subcommand in args: CLI11 hands
// it on to the subcommand, but it was given to factory.
bool before_the_command(const CLI::App& app, const CLI::ParseError& error,
                        const std::vector<std::string>& args) {
    if (!is<CLI::ExtrasError>(error) || app.get_subcommands().empty()) return false;
    auto arg = first_extra(error.what());
    const std::string& command = app.get_subcommands().front()->get_name();
    for (const auto& a : args) {
        if (a == arg) return true;
        if (a == command) return false;
    }
    return false;
}

} // namespace

std::string usage_message(const CLI::App& app, const CLI::ParseError& error,
                          const std::vector<std::string>& args) {
    const CLI::App& cmd = before_the_command(app, error, args) ? app : failing_command(app);
    std::string path = command_path(cmd);
    std::string help = "factory " + (path.empty() ? "" : path + " ") + "--help";
    return (path.empty() ? "" : path + ": ") + what(cmd, error) + "; see '" + help + "'";
}

} // namespace factory::cli
