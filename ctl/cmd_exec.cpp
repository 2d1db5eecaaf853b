// openshellctl exec NAME [--tty] [--env K=V]... [--workdir D] -- CMD: runs CMD in the sandbox
// with this process's stdin, stdout and stderr (passed to the daemon as descriptors), or with
// --tty on a pty of its own relayed to this terminal (tty_session.hpp), and exits with its code
// (128+N when a signal N ended it).
#include <systemd/sd-bus.h>

#include <cstring>
#include <iostream>
#include <vector>

#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"
#include "ctl/tty_session.hpp"

namespace openshell::ctl {
namespace {

struct Options {
  std::string name;
  std::vector<std::string> env;
  std::string workdir;
  std::vector<std::string> command;
  bool tty = false;
};

int exec(const Global& global, const Options& o) {
  for (const auto& kv : o.env)
    if (kv.find('=') == std::string::npos || kv.front() == '=') {
      std::cerr << "openshellctl: exec: --env takes KEY=VALUE, got '" << kv.substr(0, 64)
                << "'\n";
      return kExitUsage;
    }
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  if (o.tty) return run_on_pty(bus->get(), o.name, o.command, o.env, o.workdir);
  auto request = new_call(bus->get(), "Exec");
  if (!request) return fail(request.error().message());
  sd_bus_message* m = request->get();
  int rc = sd_bus_message_append(m, "s", o.name.c_str());
  if (rc >= 0) rc = append_strings(m, o.command);
  if (rc >= 0) rc = append_strings(m, o.env);
  if (rc >= 0) rc = sd_bus_message_append(m, "shhh", o.workdir.c_str(), 0, 1, 2);
  if (rc < 0) return fail(std::string("building the request: ") + std::strerror(-rc));
  auto reply = call_forwarding_signals(bus->get(), m);
  if (!reply) return fail_command(reply.error());
  int code = 0;
  if (sd_bus_message_read(reply->get(), "i", &code) < 0) return fail("unexpected reply to Exec");
  return code;
}

}  // namespace

void add_exec(CLI::App& app, const Global& global, Action* run) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("exec", "Run a command in a sandbox with this terminal's stdio");
  cmd->add_option("name", options->name, "Sandbox name")->type_name("SANDBOX")->required();
  cmd->add_option("--env", options->env, "KEY=VALUE added to the command's environment")
      ->allow_extra_args(false);
  cmd->add_option("--workdir", options->workdir, "Absolute directory inside the sandbox");
  cmd->add_flag("-t,--tty", options->tty, "Give the command a terminal of its own (interactive)");
  cmd->add_option("command", options->command, "-- CMD ARGS...")->required();
  cmd->callback([&global, run, options] { *run = [&global, options] { return exec(global, *options); }; });
}

}  // namespace openshell::ctl
