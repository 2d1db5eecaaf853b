// openshellctl run [--policy P|--policy-file F] [--env K=V]... -- CMD: a sandbox for one command,
// CMD its main process with this process's stdio; it is deleted (workspace included) before
// we exit with CMD's code.
#include <systemd/sd-bus.h>

#include <vector>

#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"

namespace openshell::ctl {
namespace {

struct Options {
  std::string policy;
  std::string policy_file;
  std::vector<std::string> env;
  NewSandbox sandbox;  // its workdir
  std::vector<std::string> command;
};

int run(const Global& global, const Options& o) {
  std::string text, source;
  if (!o.policy_file.empty()) {
    auto read = read_policy_file(o.policy_file);
    if (!read) return fail(read.error().message());
    text = std::move(*read);
    source = o.policy_file == "-" ? "<stdin>" : o.policy_file;
  }
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  // One call: the daemon makes the sandbox with CMD as its main process on our stdio, and
  // replies with CMD's status once the sandbox is gone.
  auto request = new_call(bus->get(), "RunSandbox");
  if (!request) return fail(request.error().message());
  sd_bus_message* m = request->get();
  int rc = sd_bus_message_append(m, "sss", o.policy.c_str(), text.c_str(), source.c_str());
  if (rc >= 0) rc = append_strings(m, o.command);
  if (rc >= 0) rc = append_strings(m, o.env);
  if (rc < 0) return fail("building the request");
  auto appended = append_options(m, o.sandbox, /*with_env=*/false);
  if (!appended) return fail(appended.error().message());
  if (*appended >= 0) rc = sd_bus_message_append(m, "hhh", 0, 1, 2);
  if (*appended < 0 || rc < 0) return fail("building the request");
  auto reply = call_forwarding_signals(bus->get(), m);
  if (!reply) return fail_command(reply.error());
  int code = kExitFailed;
  if (sd_bus_message_read(reply->get(), "i", &code) < 0) return fail("unexpected reply to RunSandbox");
  return code;
}

}  // namespace

void add_run(CLI::App& app, const Global& global, Action* run_action) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("run", "Run one command in a new sandbox, then delete it");
  auto* named = cmd->add_option("--policy", options->policy,
                                "Named policy (default: the daemon's default)")
                       ->type_name("POLICY");
  cmd->add_option("--policy-file", options->policy_file, "A policy file of your own instead")
      ->type_name("FILE")
      ->excludes(named);
  cmd->add_option("--env", options->env, "KEY=VALUE added to the command's environment")
      ->allow_extra_args(false);
  cmd->add_option("--workdir", options->sandbox.workdir,
                  "A directory of yours at /sandbox (read-write; the agent writes as you)")
      ->type_name("DIR");
  cmd->add_flag("--workdir-readonly", options->sandbox.workdir_readonly,
                "Mount --workdir read-only");
  cmd->add_option("command", options->command, "-- CMD ARGS...")->required();
  cmd->callback([&global, run_action, options] {
    *run_action = [&global, options] { return run(global, *options); };
  });
}

}  // namespace openshell::ctl
