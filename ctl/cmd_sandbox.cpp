// openshellctl sandbox create|list|get|delete.
#include <systemd/sd-bus.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

struct Row {
  std::string name, phase, policy;
  uint64_t revision = 0;
  uint32_t owner = 0;
  int64_t created = 0;
  int32_t exit_status = -1;  // -1: none (running, or its command never ran)
  std::string reason;
  std::string source;  // where its revision in force came from
};

nlohmann::json to_json(const Row& r) {
  return {{"name", r.name},
          {"phase", r.phase},
          {"policy", r.policy},
          {"revision", r.revision},
          {"owner", r.owner},
          {"created_unix_ms", r.created},
          {"exit_status", r.exit_status < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.exit_status)},
          {"reason", r.reason},
          {"source", r.source}};
}

std::string shown_exit(const Row& r) {
  return r.exit_status < 0 ? std::string("-") : std::to_string(r.exit_status);
}

// A sandbox that follows no named policy (made from a file, or set since): where its revision
// came from, "set from FILE" and the like.
std::string shown_policy(const Row& r) {
  if (!r.policy.empty()) return r.policy;
  return "(" + (r.source.empty() ? std::string("its own") : r.source) + ")";
}

struct Options {
  std::string name;
  std::string policy;
  std::string policy_file;
  NewSandbox sandbox;
  std::vector<std::string> command;
};

// From a named policy, or from a policy file when `policy_file` is set (CreateSandbox /
// CreateSandboxWithPolicy).
Result<MessagePtr> create_sandbox(sd_bus* bus, const Options& o) {
  std::string text, source;
  if (!o.policy_file.empty()) {
    auto read = read_policy_file(o.policy_file);
    if (!read) return read.error();
    text = std::move(*read);
    source = o.policy_file == "-" ? "<stdin>" : o.policy_file;
  }
  auto request = new_call(bus, o.policy_file.empty() ? "CreateSandbox" : "CreateSandboxWithPolicy");
  if (!request) return request.error();
  sd_bus_message* m = request->get();
  int rc = o.policy_file.empty()
               ? sd_bus_message_append(m, "ss", o.name.c_str(), o.policy.c_str())
               : sd_bus_message_append(m, "sss", o.name.c_str(), text.c_str(), source.c_str());
  if (rc >= 0) rc = append_strings(m, o.command);
  if (rc < 0) return Error::from_errno("building the request", -rc);
  auto appended = append_options(m, o.sandbox, /*with_env=*/true);
  if (!appended) return appended.error();
  if (*appended < 0) return Error::from_errno("building the request", -*appended);
  return call_prepared(bus, m);
}

int create(const Global& global, const Options& o) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = create_sandbox(bus->get(), o);
  if (!reply) return fail(reply.error().message());
  if (global.json) {
    std::cout << nlohmann::json{{"name", o.name}}.dump() << "\n";
  } else {
    std::cout << "created " << o.name << "\n";
  }
  return kExitOk;
}

// The daemon's SandboxChanged and PolicyGenerationChanged as they come, a line each, until
// the daemon goes (exit 1) or we are stopped. Asked for (start) before the list is read, so
// that no change in between is lost (it is printed after the list, which may show it too).
class Watch {
 public:
  explicit Watch(const Global& global) : global_(global) {}

  Status start(sd_bus* bus) {
    sd_bus_slot* slot = nullptr;
    int rc = sd_bus_match_signal(bus, &slot, nullptr, "/org/openshell/Manager1",
                                 "org.openshell.Manager1", nullptr, on_signal, this);
    signals_.reset(slot);
    if (rc >= 0)
      rc = sd_bus_match_signal(bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "NameOwnerChanged", on_owner, this);
    owner_.reset(rc >= 0 ? slot : nullptr);
    if (rc < 0) return Error::from_errno("watching the daemon", -rc);
    auto watching = call(bus, "WatchSandboxes", [](sd_bus_message*) { return 0; });
    if (!watching) return watching.error();
    return {};
  }

  int run(sd_bus* bus) {
    std::fflush(stdout);
    while (!daemon_gone_) {
      int rc = sd_bus_process(bus, nullptr);
      if (rc < 0) return fail(std::string("the bus went away: ") + std::strerror(-rc));
      if (rc > 0) continue;
      if ((rc = sd_bus_wait(bus, UINT64_MAX)) < 0 && rc != -EINTR)
        return fail(std::string("the bus went away: ") + std::strerror(-rc));
    }
    return fail("openshelld went away");
  }

 private:
  static int on_signal(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const auto* self = static_cast<Watch*>(userdata);
    const bool json = self->global_.json;
    const char* name = nullptr;
    nlohmann::json line;
    if (sd_bus_message_is_signal(m, "org.openshell.Manager1", "SandboxChanged")) {
      const char *phase = nullptr, *reason = nullptr;
      if (sd_bus_message_read(m, "sss", &name, &phase, &reason) < 0) return 0;
      line = {{"signal", "SandboxChanged"}, {"name", name}, {"phase", phase}, {"reason", reason}};
      if (!json) std::printf("%-24s %-9s %s\n", name, phase, reason);
    } else if (sd_bus_message_is_signal(m, "org.openshell.Manager1", "PolicyGenerationChanged")) {
      uint64_t revision = 0;
      if (sd_bus_message_read(m, "st", &name, &revision) < 0) return 0;
      line = {{"signal", "PolicyGenerationChanged"}, {"name", name}, {"revision", revision}};
      if (!json) std::printf("%-24s revision %llu\n", name, static_cast<unsigned long long>(revision));
    } else {
      return 0;
    }
    if (json) std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
    return 0;
  }

  static int on_owner(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 &&
        std::strcmp(name, "org.openshell.Manager1") == 0 && new_owner[0] == '\0')
      static_cast<Watch*>(userdata)->daemon_gone_ = true;
    return 0;
  }

  const Global& global_;
  bool daemon_gone_ = false;
  BusSlot signals_, owner_;
};

int list(const Global& global, bool follow) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  Watch changes(global);
  if (follow)
    if (auto st = changes.start(bus->get()); !st) return fail(st.error().message());
  auto reply = call(bus->get(), "ListSandboxes", [](sd_bus_message*) { return 0; });
  if (!reply) return fail(reply.error().message());
  std::vector<Row> rows;
  sd_bus_message* m = reply->get();
  if (sd_bus_message_enter_container(m, 'a', "(ssstuxiss)") < 0) return fail("unexpected reply");
  for (;;) {
    const char *name = nullptr, *phase = nullptr, *policy = nullptr, *reason = nullptr,
               *source = nullptr;
    Row r;
    const int rc = sd_bus_message_read(m, "(ssstuxiss)", &name, &phase, &policy, &r.revision,
                                       &r.owner, &r.created, &r.exit_status, &reason, &source);
    if (rc < 0) return fail("unexpected reply");
    if (rc == 0) break;
    r.name = name;
    r.phase = phase;
    r.policy = policy;
    r.reason = reason;
    r.source = source;
    rows.push_back(r);
  }
  if (global.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows) out.push_back(to_json(r));
    std::cout << out.dump() << std::endl;
    if (follow) return changes.run(bus->get());
    return kExitOk;
  }
  std::printf("%-24s %-9s %-16s %8s %8s %4s  %s\n", "NAME", "PHASE", "POLICY", "REVISION",
              "OWNER", "EXIT", "REASON");
  for (const auto& r : rows)
    std::printf("%-24s %-9s %-16s %8llu %8u %4s  %s\n", r.name.c_str(), r.phase.c_str(),
                shown_policy(r).c_str(), static_cast<unsigned long long>(r.revision), r.owner,
                shown_exit(r).c_str(), r.reason.c_str());
  if (follow) return changes.run(bus->get());
  return kExitOk;
}

int get(const Global& global, const std::string& name) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  auto reply = call(bus->get(), "GetSandbox",
                    [&](sd_bus_message* m) { return sd_bus_message_append(m, "s", name.c_str()); });
  if (!reply) return fail(reply.error().message());
  const char *n = nullptr, *phase = nullptr, *policy = nullptr, *reason = nullptr,
             *workdir = nullptr, *source = nullptr;
  Row r;
  if (sd_bus_message_read(reply->get(), "ssstuxsiss", &n, &phase, &policy, &r.revision, &r.owner,
                          &r.created, &reason, &r.exit_status, &workdir, &source) < 0)
    return fail("unexpected reply");
  r.name = n;
  r.phase = phase;
  r.policy = policy;
  r.reason = reason;
  r.source = source;
  if (global.json) {
    auto j = to_json(r);
    j["workdir"] = workdir;
    std::cout << j.dump() << "\n";
    return kExitOk;
  }
  std::cout << "name      " << r.name << "\nphase     " << r.phase << "\npolicy    " << shown_policy(r)
            << "\nrevision  " << r.revision << "\nowner     " << r.owner << "\n";
  if (workdir[0] != '\0') std::cout << "workdir   " << workdir << "\n";
  if (r.exit_status >= 0) std::cout << "exit      " << r.exit_status << "\n";
  if (!r.reason.empty()) std::cout << "reason    " << r.reason << "\n";
  return kExitOk;
}

// delete, start and stop of one or more sandboxes, each in turn, all tried even when one
// fails: a line each ("deleted a", "b is running already"), or under --json one array of
// {"name", "done"} (done: "deleted", "started", "stopped", or "" when there was nothing to do,
// with a "note") or {"name", "error"}. Fails when any failed.
int each(const Global& global, const char* method, const std::vector<std::string>& names,
         const char* done, const char* already) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  nlohmann::json out = nlohmann::json::array();
  int status = kExitOk;
  for (const auto& name : names) {
    auto reply = call(bus->get(), method,
                      [&](sd_bus_message* m) { return sd_bus_message_append(m, "s", name.c_str()); });
    if (!reply) {
      status = global.json ? kExitFailed : fail(reply.error().message());
      out.push_back({{"name", name}, {"error", reply.error().message()}});
      continue;
    }
    int changed = 1;  // DeleteSandbox replies nothing: it always does what it says
    if (already != nullptr && sd_bus_message_read(reply->get(), "b", &changed) < 0)
      return fail("unexpected reply");
    if (changed != 0) {
      out.push_back({{"name", name}, {"done", done}});
      if (!global.json) std::cout << done << " " << name << "\n";
    } else {
      out.push_back({{"name", name}, {"done", ""}, {"note", name + " " + already}});
      if (!global.json) std::cout << name << " " << already << "\n";
    }
  }
  if (global.json) std::cout << out.dump() << "\n";
  return status;
}

}  // namespace

void add_sandbox(CLI::App& app, const Global& global, Action* run) {
  auto* sandbox = app.add_subcommand("sandbox", "Create, list, show and delete sandboxes");
  sandbox->require_subcommand(1);
  auto options = std::make_shared<Options>();

  auto* c = sandbox->add_subcommand("create", "Create a sandbox and start its main process");
  c->add_option("name", options->name, "Sandbox name")->type_name("SANDBOX")->required();
  auto* named = c->add_option("--policy", options->policy,
                              "Named policy (default: the daemon's default)")
                       ->type_name("POLICY");
  c->add_option("--policy-file", options->policy_file,
                "A policy file of your own instead (- for standard input)")
      ->type_name("FILE")
      ->excludes(named);
  c->add_option("--workdir", options->sandbox.workdir,
                "A directory of yours at /sandbox (read-write; the agent writes as you) instead "
                "of a workspace of its own")
      ->type_name("DIR");
  c->add_flag("--workdir-readonly", options->sandbox.workdir_readonly,
              "Mount --workdir read-only");
  c->add_option("--env", options->sandbox.env, "KEY=VALUE for the main process (repeatable)")
      ->allow_extra_args(false);
  c->add_option("--provider", options->sandbox.providers,
                "Attach a provider: its keys are placeholders in the sandbox, its values put in "
                "by the proxy (repeatable; root)")
      ->type_name("PROVIDER")
      ->allow_extra_args(false);
  c->add_option("--inference", options->sandbox.routes,
                "The inference routes of https://inference.local, instead of the policy's "
                "(repeatable; root)")
      ->type_name("ROUTE")
      ->allow_extra_args(false);
  c->add_option("command", options->command, "-- CMD ARGS... (default: sleep infinity)");
  c->callback([&global, run, options] { *run = [&global, options] { return create(global, *options); }; });

  auto* l = sandbox->add_subcommand("list", "List the sandboxes you can see");
  l->alias("ls");
  auto follow = std::make_shared<bool>(false);
  l->add_flag("--watch", *follow,
              "Then print each change as it comes (NAME PHASE REASON, or NAME revision N; "
              "JSON lines with --json) until openshelld goes or you stop it");
  l->callback([&global, run, follow] { *run = [&global, follow] { return list(global, *follow); }; });

  auto* g = sandbox->add_subcommand("get", "Show one sandbox");
  g->add_option("name", options->name, "Sandbox name")->type_name("SANDBOX")->required();
  g->callback([&global, run, options] { *run = [&global, options] { return get(global, options->name); }; });

  auto names = std::make_shared<std::vector<std::string>>();
  auto* start = sandbox->add_subcommand("start", "Start stopped sandboxes again (same workspace)");
  start->add_option("names", *names, "Sandbox names")->type_name("SANDBOX")->required();
  start->callback([&global, run, names] {
    *run = [&global, names] {
      return each(global, "StartSandbox", *names, "started", "is running already");
    };
  });
  auto* stop = sandbox->add_subcommand("stop", "Stop sandboxes' main processes; keep the sandboxes");
  stop->add_option("names", *names, "Sandbox names")->type_name("SANDBOX")->required();
  stop->callback([&global, run, names] {
    *run = [&global, names] {
      return each(global, "StopSandbox", *names, "stopped", "is stopped already");
    };
  });

  auto* d = sandbox->add_subcommand("delete", "Stop sandboxes and remove them with their workspaces");
  d->alias("rm");
  d->add_option("names", *names, "Sandbox names")->type_name("SANDBOX")->required();
  d->callback([&global, run, names] {
    *run = [&global, names] { return each(global, "DeleteSandbox", *names, "deleted", nullptr); };
  });
}

}  // namespace openshell::ctl
