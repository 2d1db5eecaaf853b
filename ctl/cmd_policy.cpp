// openshellctl policy list|show NAME|validate FILE|reload, and a sandbox's own policy:
// set SANDBOX FILE|get SANDBOX|history SANDBOX|rollback SANDBOX.
#include <systemd/sd-bus.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

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
  if (global.json)
    std::cout << nlohmann::json{{"name", name}, {"text", text}}.dump() << "\n";
  else
    std::cout << text;
  return kExitOk;
}

int validate(const Global& global, const std::string& file) {
  auto text = read_policy_file(file);
  if (!text) return fail(text.error().message());
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "ValidatePolicy", [&](sd_bus_message* m) {
    return sd_bus_message_append(m, "ss", text->c_str(), file.c_str());
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
  // Some sandboxes still enforce their old revision: a script must be able to tell.
  return failed.empty() && recreate.empty() ? kExitOk : kExitPartial;
}

// The reply of SetPolicy and RollbackPolicy: the sandbox's new revision.
int print_revision(const Global& global, const std::string& sandbox,
                   const Result<MessagePtr>& reply) {
  if (!reply) return fail(reply.error().message());
  uint64_t revision = 0;
  if (sd_bus_message_read(reply->get(), "t", &revision) < 0) return fail("unexpected reply");
  if (global.json)
    std::cout << nlohmann::json{{"sandbox", sandbox}, {"revision", revision}}.dump() << "\n";
  else
    std::cout << sandbox << " is on revision " << revision << "\n";
  return kExitOk;
}

int set(const Global& global, const std::string& sandbox, const std::string& file) {
  auto text = read_policy_file(file);
  if (!text) return fail(text.error().message());
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  const std::string source = file == "-" ? "<stdin>" : file;
  auto reply = call(bus->get(), "SetPolicy", [&](sd_bus_message* m) {
    return sd_bus_message_append(m, "sss", sandbox.c_str(), text->c_str(), source.c_str());
  });
  return print_revision(global, sandbox, reply);
}

int get(const Global& global, const std::string& sandbox, uint64_t wanted) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "GetPolicy", [&](sd_bus_message* m) {
    return sd_bus_message_append(m, "st", sandbox.c_str(), wanted);
  });
  if (!reply) return fail(reply.error().message());
  uint64_t revision = 0;
  const char* text = nullptr;
  if (sd_bus_message_read(reply->get(), "ts", &revision, &text) < 0)
    return fail("unexpected reply");
  if (global.json)
    std::cout << nlohmann::json{{"sandbox", sandbox}, {"revision", revision}, {"text", text}}.dump()
              << "\n";
  else
    std::cout << text;
  return kExitOk;
}

std::string utc(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const time_t t = static_cast<time_t>(unix_ms / 1000);
  tm parts{};
  ::gmtime_r(&t, &parts);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buf;
}

int history(const Global& global, const std::string& sandbox) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "PolicyHistory", [&](sd_bus_message* m) {
    return sd_bus_message_append(m, "s", sandbox.c_str());
  });
  if (!reply) return fail(reply.error().message());
  sd_bus_message* r = reply->get();
  uint64_t current = 0;
  if (sd_bus_message_read(r, "t", &current) < 0 || sd_bus_message_enter_container(r, 'a', "(txs)") < 0)
    return fail("unexpected reply");
  nlohmann::json rows = nlohmann::json::array();
  uint64_t number = 0;
  int64_t time_ms = 0;
  const char* origin = nullptr;
  int rc;
  while ((rc = sd_bus_message_read(r, "(txs)", &number, &time_ms, &origin)) > 0)
    rows.push_back({{"revision", number}, {"time_unix_ms", time_ms}, {"origin", origin},
                    {"current", number == current}});
  if (rc < 0) return fail("unexpected reply");
  if (global.json) {
    std::cout << rows.dump() << "\n";
    return kExitOk;
  }
  std::printf("%-3s %-9s %-21s %s\n", "", "REVISION", "APPLIED", "ORIGIN");
  for (const auto& row : rows)
    std::printf("%-3s %8llu  %-21s %s\n", row["current"].get<bool>() ? "*" : "",
                static_cast<unsigned long long>(row["revision"].get<uint64_t>()),
                utc(row["time_unix_ms"].get<int64_t>()).c_str(),
                row["origin"].get<std::string>().c_str());
  return kExitOk;
}

int rollback(const Global& global, const std::string& sandbox, uint64_t to) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "RollbackPolicy", [&](sd_bus_message* m) {
    return sd_bus_message_append(m, "st", sandbox.c_str(), to);
  });
  return print_revision(global, sandbox, reply);
}

}  // namespace

void add_policy(CLI::App& app, const Global& global, Action* run) {
  auto* policy = app.add_subcommand("policy", "Named policies");
  policy->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto* l = policy->add_subcommand("list", "List the named policies");
  l->callback([&global, run] { *run = [&global] { return list(global); }; });
  auto* s = policy->add_subcommand("show", "Print a named policy");
  s->add_option("name", *name, "Policy name")->type_name("POLICY")->required();
  s->callback([&global, run, name] { *run = [&global, name] { return show(global, *name); }; });
  auto* v = policy->add_subcommand("validate", "Check a policy file (file:line:col: reason)");
  v->add_option("file", *name, "Policy TOML file")->type_name("FILE")->required();
  v->callback([&global, run, name] { *run = [&global, name] { return validate(global, *name); }; });
  auto* r = policy->add_subcommand(
      "reload", "Re-read all named policies and update running sandboxes (all or nothing)");
  r->callback([&global, run] { *run = [&global] { return reload(global); }; });

  // A sandbox's own policy. After set or rollback the sandbox is pinned: reloads of its named
  // policy pass it by.
  auto file = std::make_shared<std::string>();
  auto number = std::make_shared<uint64_t>(0);
  auto* st = policy->add_subcommand(
      "set", "Give a sandbox its own policy (a running one takes network_policies changes only)");
  st->add_option("sandbox", *name, "Sandbox name")->type_name("SANDBOX")->required();
  st->add_option("file", *file, "Policy TOML file, or - for standard input")->type_name("FILE")->required();
  st->callback([&global, run, name, file] {
    *run = [&global, name, file] { return set(global, *name, *file); };
  });
  auto* g = policy->add_subcommand("get", "Print a sandbox's policy (its current revision)");
  g->add_option("sandbox", *name, "Sandbox name")->type_name("SANDBOX")->required();
  g->add_option("--revision", *number, "An earlier revision instead");
  g->callback([&global, run, name, number] {
    *run = [&global, name, number] { return get(global, *name, *number); };
  });
  auto* h = policy->add_subcommand("history", "List a sandbox's policy revisions");
  h->add_option("sandbox", *name, "Sandbox name")->type_name("SANDBOX")->required();
  h->callback([&global, run, name] { *run = [&global, name] { return history(global, *name); }; });
  auto* rb = policy->add_subcommand(
      "rollback", "Apply an earlier revision again, as a new one (default: the previous)");
  rb->add_option("sandbox", *name, "Sandbox name")->type_name("SANDBOX")->required();
  rb->add_option("--to", *number, "The revision to go back to");
  rb->callback([&global, run, name, number] {
    *run = [&global, name, number] { return rollback(global, *name, *number); };
  });
}

}  // namespace openshell::ctl
