// openshellctl policy list|show NAME|validate FILE|reload.
#include <systemd/sd-bus.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

constexpr size_t kMaxPolicyBytes = 1 << 20;

int list(const Global& global) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "ListPolicies", [](sd_bus_message*) { return 0; });
  if (!reply) return fail(reply.error().message());
  std::vector<std::string> names;
  if (read_strings(reply->get(), &names) < 0) return fail("unexpected reply");
  if (global.json) {
    std::cout << nlohmann::json(names).dump() << "\n";
  } else {
    for (const auto& n : names) std::cout << n << "\n";
  }
  return kExitOk;
}

int show(const Global& global, const std::string& name) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "ShowPolicy",
                    [&](sd_bus_message* m) { return sd_bus_message_append(m, "s", name.c_str()); });
  if (!reply) return fail(reply.error().message());
  const char* text = nullptr;
  if (sd_bus_message_read(reply->get(), "s", &text) < 0) return fail("unexpected reply");
  std::cout << text;
  return kExitOk;
}

int validate(const Global& global, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail("cannot read " + file);
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > kMaxPolicyBytes) return fail(file + ": larger than 1 MiB");
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "ValidatePolicy", [&](sd_bus_message* m) {
    return sd_bus_message_append(m, "ss", text.str().c_str(), file.c_str());
  });
  if (!reply) return fail(reply.error().message());
  std::vector<std::string> diagnostics;
  if (read_strings(reply->get(), &diagnostics) < 0) return fail("unexpected reply");
  if (global.json) {
    std::cout << nlohmann::json{{"ok", diagnostics.empty()}, {"diagnostics", diagnostics}}.dump()
              << "\n";
  } else if (diagnostics.empty()) {
    std::cout << file << ": ok\n";
  } else {
    for (const auto& d : diagnostics) std::cerr << d << "\n";
  }
  return diagnostics.empty() ? kExitOk : kExitFailed;
}

int reload(const Global& global) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "ReloadPolicies", [](sd_bus_message*) { return 0; });
  if (!reply) return fail(reply.error().message());
  std::vector<std::string> applied, recreate, failed;
  if (read_strings(reply->get(), &applied) < 0 || read_strings(reply->get(), &recreate) < 0 ||
      read_strings(reply->get(), &failed) < 0)
    return fail("unexpected reply");
  if (global.json) {
    std::cout << nlohmann::json{{"applied", applied},
                                {"needs_recreation", recreate},
                                {"failed", failed}}
                     .dump()
              << "\n";
  } else {
    for (const auto& s : applied) std::cout << "applied      " << s << "\n";
    for (const auto& s : recreate)
      std::cout << "not applied  " << s << " (changes outside network_policies: re-create it)\n";
    for (const auto& s : failed) std::cerr << "failed       " << s << "\n";
    if (applied.empty() && recreate.empty() && failed.empty())
      std::cout << "policies reloaded; no running sandbox needed a change\n";
  }
  return failed.empty() ? kExitOk : kExitFailed;
}

}  // namespace

void add_policy(CLI::App& app, const Global& global, Action* run) {
  auto* policy = app.add_subcommand("policy", "Named policies");
  policy->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto* l = policy->add_subcommand("list", "List the named policies");
  l->callback([&global, run] { *run = [&global] { return list(global); }; });
  auto* s = policy->add_subcommand("show", "Print a named policy");
  s->add_option("name", *name, "Policy name")->required();
  s->callback([&global, run, name] { *run = [&global, name] { return show(global, *name); }; });
  auto* v = policy->add_subcommand("validate", "Check a policy file (file:line:col: reason)");
  v->add_option("file", *name, "Policy TOML file")->required();
  v->callback([&global, run, name] { *run = [&global, name] { return validate(global, *name); }; });
  auto* r = policy->add_subcommand(
      "reload", "Re-read all named policies and update running sandboxes (all or nothing)");
  r->callback([&global, run] { *run = [&global] { return reload(global); }; });
}

}  // namespace openshell::ctl
