// openshellctl provider create|update|list|get|delete, and inference route
// set|list|get|delete (issue 16). A credential's value is read from our environment (KEY) or
// from standard input (--credential-stdin KEY), never from the command line: argv is every
// user's to read. Nothing printed ever holds a value.
#include <systemd/sd-bus.h>

#include <openssl/crypto.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/inference.hpp"
#include "core/providers.hpp"
#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

struct ProviderArgs {
  std::string name;
  std::string type;
  std::vector<std::string> from_env;  // --credential KEY
  std::string from_stdin;             // --credential-stdin KEY
};

// The values, from where the user said; an error names the key, never a value.
Result<std::map<std::string, std::string>> credentials_of(const ProviderArgs& a) {
  std::map<std::string, std::string> out;
  for (const auto& key : a.from_env) {
    const char* value = std::getenv(key.c_str());
    if (value == nullptr)
      return Error::invalid("--credential " + key + ": set the environment variable " + key +
                            " to its value (values are never taken from the command line)");
    out[key] = value;
  }
  if (!a.from_stdin.empty()) {
    std::string value;
    char buf[4096];
    while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
      value.append(buf, static_cast<size_t>(std::cin.gcount()));
      if (value.size() > providers::kMaxValueBytes + 2)
        return Error::invalid("--credential-stdin " + a.from_stdin + ": longer than " +
                              std::to_string(providers::kMaxValueBytes) + " bytes");
    }
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    out[a.from_stdin] = std::move(value);
  }
  return out;
}

int set_provider(const Global& global, const ProviderArgs& a, bool create) {
  if (a.from_env.empty() && a.from_stdin.empty() && create)
    return fail("provider create needs --credential KEY or --credential-stdin KEY");
  auto creds = credentials_of(a);
  if (!creds) return fail(creds.error().message());
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "SetProvider", [&](sd_bus_message* m) {
    int rc = sd_bus_message_append(m, "ss", a.name.c_str(), a.type.c_str());
    if (rc >= 0) rc = sd_bus_message_open_container(m, 'a', "{ss}");
    for (const auto& [key, value] : *creds)
      if (rc >= 0) rc = sd_bus_message_append(m, "{ss}", key.c_str(), value.c_str());
    if (rc >= 0) rc = sd_bus_message_close_container(m);
    if (rc >= 0) rc = sd_bus_message_append(m, "b", create ? 1 : 0);
    return rc;
  });
  for (auto& [key, value] : *creds) OPENSSL_cleanse(value.data(), value.size());
  if (!reply) return fail(reply.error().message());
  if (!global.json) std::cout << "provider " << a.name << (create ? " created\n" : " updated\n");
  return kExitOk;
}

// A call that answers one JSON string.
Result<nlohmann::json> json_call(const Global& global, const char* method, const std::string& arg,
                                 bool with_arg) {
  auto bus = connect(global.bus);
  if (!bus) return bus.error();
  auto reply = call(bus->get(), method, [&](sd_bus_message* m) {
    return with_arg ? sd_bus_message_append(m, "s", arg.c_str()) : 0;
  });
  if (!reply) return reply.error();
  const char* text = nullptr;
  if (sd_bus_message_read(reply->get(), "s", &text) < 0) return Error::invalid("unexpected reply");
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error::invalid("unexpected reply");
  return j;
}

int simple_call(const Global& global, const char* method, const std::string& arg,
                const std::string& said) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), method,
                    [&](sd_bus_message* m) { return sd_bus_message_append(m, "s", arg.c_str()); });
  if (!reply) return fail(reply.error().message());
  if (!global.json) std::cout << said << "\n";
  return kExitOk;
}

std::string joined(const nlohmann::json& list) {
  std::string out;
  for (const auto& v : list) out += (out.empty() ? "" : ",") + v.get<std::string>();
  return out.empty() ? "-" : out;
}

void print_provider(const nlohmann::json& p) {
  std::cout << "name:       " << p["name"].get<std::string>() << "\n"
            << "type:       " << p["type"].get<std::string>() << "\n"
            << "source:     " << p["source"].get<std::string>() << "\n"
            << "keys:       " << joined(p["keys"]) << "\n"
            << "hosts:      " << joined(p["hosts"]) << " (port 443)\n"
            << "bindings:   " << joined(p["bindings"]) << "\n"
            << "sandboxes:  " << joined(p["sandboxes"]) << "\n";
}

int show(const Global& global, const char* method, const std::string& name, bool provider) {
  auto j = json_call(global, method, name, !name.empty());
  if (!j) return fail(j.error().message());
  if (global.json) {
    std::cout << j->dump() << "\n";
  } else if (!name.empty()) {
    if (provider) {
      print_provider(*j);
    } else {
      for (const auto& [k, v] : j->items()) std::cout << k << ": " << v.dump() << "\n";
    }
  } else if (provider) {
    std::printf("%-24s %-10s %s\n", "NAME", "TYPE", "KEYS");
    for (const auto& p : *j)
      std::printf("%-24s %-10s %s\n", p["name"].get<std::string>().c_str(),
                  p["type"].get<std::string>().c_str(), joined(p["keys"]).c_str());
  } else {
    std::printf("%-20s %-9s %-7s %-6s %-24s %s\n", "NAME", "API", "WHERE", "COST", "MODEL",
                "BASE URL");
    for (const auto& r : *j)
      std::printf("%-20s %-9s %-7s %-6u %-24s %s\n", r["name"].get<std::string>().c_str(),
                  r["api"].get<std::string>().c_str(), r["locality"].get<std::string>().c_str(),
                  r["cost"].get<unsigned>(), r["model"].get<std::string>().c_str(),
                  r["base_url"].get<std::string>().c_str());
  }
  return kExitOk;
}

// The route as given; its api and locality as words until checked.
struct RouteArgs {
  inference::Route route;
  std::string api = "openai";
  std::string locality = "remote";
};

int set_route(const Global& global, RouteArgs a) {
  inference::Route& r = a.route;
  const auto api = inference::parse_api(a.api);
  const auto where = inference::parse_locality(a.locality);
  if (!api) return fail("--api: openai or anthropic");
  if (!where) return fail("--locality: local or remote");
  r.api = *api;
  r.locality = *where;
  if (auto st = inference::validate(r); !st) return fail(st.error().message());
  return simple_call(global, "SetRoute", inference::to_json(r).dump(), "route " + r.name + " set");
}

}  // namespace

void add_provider(CLI::App& app, const Global& global, Action* run) {
  auto* provider = app.add_subcommand("provider", "Credentials the proxy puts in for a sandbox");
  provider->require_subcommand(1);
  auto a = std::make_shared<ProviderArgs>();
  const auto values = [&a](CLI::App* c) {
    c->add_option("--credential", a->from_env,
                  "KEY: its value from our environment variable KEY (repeatable)")
        ->allow_extra_args(false);
    c->add_option("--credential-stdin", a->from_stdin, "KEY: its value from standard input");
  };
  auto* c = provider->add_subcommand("create", "Store a provider (root)");
  c->add_option("name", a->name, "Provider name")->type_name("PROVIDER")->required();
  c->add_option("--type", a->type, "generic, github, openai, anthropic or nvidia")->required();
  values(c);
  c->callback([&global, run, a] { *run = [&global, a] { return set_provider(global, *a, true); }; });
  auto* u = provider->add_subcommand(
      "update", "New values for some of a provider's keys; running sandboxes get them (root)");
  u->add_option("name", a->name, "Provider name")->type_name("PROVIDER")->required();
  u->add_option("--type", a->type, "A new type");
  values(u);
  u->callback([&global, run, a] { *run = [&global, a] { return set_provider(global, *a, false); }; });
  auto* l = provider->add_subcommand("list", "List the providers (names and keys, never values)");
  l->callback([&global, run] { *run = [&global] { return show(global, "ListProviders", "", true); }; });
  auto* g = provider->add_subcommand("get", "A provider's type, keys, endpoints and sandboxes");
  g->add_option("name", a->name, "Provider name")->type_name("PROVIDER")->required();
  g->callback([&global, run, a] {
    *run = [&global, a] { return show(global, "GetProvider", a->name, true); };
  });
  auto* d = provider->add_subcommand("delete", "Delete a provider (root)");
  d->add_option("name", a->name, "Provider name")->type_name("PROVIDER")->required();
  d->callback([&global, run, a] {
    *run = [&global, a] {
      return simple_call(global, "DeleteProvider", a->name, "provider " + a->name + " deleted");
    };
  });
}

void add_inference(CLI::App& app, const Global& global, Action* run) {
  auto* inference = app.add_subcommand("inference", "The privacy router of inference.local");
  inference->require_subcommand(1);
  auto* route = inference->add_subcommand("route", "Named model backends");
  route->require_subcommand(1);
  auto a = std::make_shared<RouteArgs>();
  auto* s = route->add_subcommand("set", "Create or replace a route (root)");
  s->add_option("name", a->route.name, "Route name")->type_name("ROUTE")->required();
  s->add_option("--base-url", a->route.base_url, "https://host[:port][/prefix] (or http:// for a local server)")
      ->required();
  s->add_option("--api", a->api, "openai or anthropic (default: openai)");
  s->add_option("--provider", a->route.provider, "The provider whose key the backend gets")
      ->type_name("PROVIDER")
      ->required();
  s->add_option("--model", a->route.model, "The model the backend is asked for")->required();
  s->add_option("--locality", a->locality, "local or remote (default: remote)");
  s->add_option("--cost", a->route.cost, "Lower is preferred (default: 0)");
  s->add_option("--models", a->route.models, "Globs of the requested models it serves (repeatable)")
      ->allow_extra_args(false);
  s->callback([&global, run, a] { *run = [&global, a] { return set_route(global, *a); }; });
  auto* l = route->add_subcommand("list", "List the routes");
  l->callback([&global, run] { *run = [&global] { return show(global, "ListRoutes", "", false); }; });
  auto* g = route->add_subcommand("get", "Show a route");
  g->add_option("name", a->route.name, "Route name")->type_name("ROUTE")->required();
  g->callback([&global, run, a] {
    *run = [&global, a] { return show(global, "GetRoute", a->route.name, false); };
  });
  auto* d = route->add_subcommand("delete", "Delete a route (root)");
  d->add_option("name", a->route.name, "Route name")->type_name("ROUTE")->required();
  d->callback([&global, run, a] {
    *run = [&global, a] {
      return simple_call(global, "DeleteRoute", a->route.name,
                         "route " + a->route.name + " deleted");
    };
  });
}

}  // namespace openshell::ctl
