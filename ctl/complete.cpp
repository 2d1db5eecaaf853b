// openshellctl __complete WORD...: what the shell completions (completions/) ask for. The words
// are the command line after "openshellctl", the last one the word being completed (possibly
// empty). One candidate per line; a line ":files" or ":dirs" asks the shell for path names.
//
// Commands and options come from the command table itself, so the completions cannot drift from
// --help. A value's kind is its option's type name (SANDBOX, POLICY, PROVIDER, ROUTE, FILE, DIR,
// PATH): sandbox, policy, provider and route names come from the daemon, as the caller sees them
// (nothing when it does not answer).
#include <systemd/sd-bus.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/inference.hpp"
#include "core/providers.hpp"
#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

std::vector<std::string> sandbox_names(sd_bus* bus) {
  std::vector<std::string> names;
  auto reply = call(bus, "ListSandboxes", [](sd_bus_message*) { return 0; });
  if (!reply) return names;
  sd_bus_message* m = reply->get();
  if (sd_bus_message_enter_container(m, 'a', "(ssstuxiss)") < 0) return names;
  const char *name, *phase, *policy, *reason, *source;
  uint64_t revision;
  uint32_t owner;
  int64_t created;
  int32_t status;
  while (sd_bus_message_read(m, "(ssstuxiss)", &name, &phase, &policy, &revision, &owner, &created,
                             &status, &reason, &source) > 0)
    names.emplace_back(name);
  return names;
}

// ListProviders and ListRoutes answer a JSON array of objects with a "name".
std::vector<std::string> json_names(sd_bus* bus, const char* method) {
  std::vector<std::string> names;
  auto reply = call(bus, method, [](sd_bus_message*) { return 0; });
  const char* text = nullptr;
  if (!reply || sd_bus_message_read(reply->get(), "s", &text) < 0) return names;
  const auto list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return names;
  for (const auto& item : list)
    if (item.is_object() && item.contains("name") && item["name"].is_string())
      names.push_back(item["name"]);
  return names;
}

// The candidates for a value of the given type name.
std::vector<std::string> values(const std::string& type, const std::string& option,
                                const std::string& bus_address) {
  if (type.find("FILE") != std::string::npos || type == "PATH") return {":files"};
  if (type.find("DIR") != std::string::npos) return {":dirs"};
  if (option == "--type") {
    std::vector<std::string> types;
    for (auto t : {providers::Type::kGeneric, providers::Type::kGithub, providers::Type::kOpenAi,
                   providers::Type::kAnthropic, providers::Type::kNvidia})
      types.emplace_back(providers::to_string(t));
    return types;
  }
  if (option == "--api")
    return {std::string(inference::to_string(inference::Api::kOpenAi)),
            std::string(inference::to_string(inference::Api::kAnthropic))};
  if (option == "--locality")
    return {std::string(inference::to_string(inference::Locality::kLocal)),
            std::string(inference::to_string(inference::Locality::kRemote))};
  if (option == "--class") return log_class_names();
  if (type != "SANDBOX" && type != "POLICY" && type != "PROVIDER" && type != "ROUTE") return {};
  auto bus = connect(bus_address);
  if (!bus) return {};
  if (type == "SANDBOX") return sandbox_names(bus->get());
  if (type == "POLICY") {
    std::vector<std::string> names;
    auto reply = call(bus->get(), "ListPolicies", [](sd_bus_message*) { return 0; });
    if (reply) read_strings(reply->get(), &names);
    return names;
  }
  return json_names(bus->get(), type == "PROVIDER" ? "ListProviders" : "ListRoutes");
}

// `name` as an option of `app` or of a command above it (they fall through).
CLI::Option* find_option(CLI::App* app, const std::string& name) {
  for (; app != nullptr; app = app->get_parent())
    if (CLI::Option* o = app->get_option_no_throw(name)) return o;
  return nullptr;
}

// Every long option `app` takes, its own and those of the commands above it, once each.
std::vector<std::string> options_of(CLI::App* app) {
  std::set<std::string> names;
  for (; app != nullptr; app = app->get_parent())
    for (const CLI::Option* o : app->get_options())
      for (const auto& name : o->get_lnames()) names.insert("--" + name);
  return {names.begin(), names.end()};
}

// The subcommand of `app` called `name` (or aliased so).
CLI::App* subcommand(CLI::App* app, const std::string& name) {
  const auto found = app->get_subcommands([&](CLI::App* s) { return s->check_name(name); });
  return found.empty() ? nullptr : found.front();
}

std::string long_name(const CLI::Option* o) {
  return o->get_lnames().empty() ? std::string() : "--" + o->get_lnames().front();
}

}  // namespace

std::vector<std::string> complete(CLI::App& app, const std::vector<std::string>& words) {
  if (words.empty()) return {};
  CLI::App* at = &app;
  std::string bus_address;
  CLI::Option* pending = nullptr;  // the option whose value comes next
  size_t positional = 0;
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    const std::string& w = words[i];
    if (pending != nullptr) {
      if (pending->check_lname("bus")) bus_address = w;
      pending = nullptr;
    } else if (w == "--") {
      return {};  // a command for the sandbox: the shell's own business
    } else if (w.starts_with("-")) {
      const auto eq = w.find('=');
      CLI::Option* o = find_option(at, w.substr(0, eq));
      if (o == nullptr) continue;
      if (eq != std::string::npos) {
        if (o->check_lname("bus")) bus_address = w.substr(eq + 1);
      } else if (o->get_expected_max() > 0) {
        pending = o;
      }
    } else if (CLI::App* sub = subcommand(at, w); sub != nullptr) {
      at = sub;
      positional = 0;
    } else {
      ++positional;
    }
  }
  const std::string& word = words.back();
  if (pending != nullptr) return values(pending->get_type_name(), long_name(pending), bus_address);
  if (word.starts_with("-")) return options_of(at);
  std::vector<std::string> out;
  const auto subs = at->get_subcommands([](CLI::App* s) { return !s->get_group().empty(); });
  if (!subs.empty()) {
    for (const CLI::App* s : subs) out.push_back(s->get_name());
    return out;
  }
  // The positional this word fills (the last one takes the rest: NAME...).
  std::vector<CLI::Option*> positionals;
  for (CLI::Option* o : at->get_options())
    if (o->get_positional()) positionals.push_back(o);
  if (positionals.empty()) return out;
  CLI::Option* target = positionals[std::min(positional, positionals.size() - 1)];
  if (positional >= positionals.size() && target->get_items_expected_max() <= 1) return out;
  return values(target->get_type_name(), "", bus_address);
}

}  // namespace openshell::ctl
