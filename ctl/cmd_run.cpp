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
  auto reply = call(bus->get(), "RunSandbox", [&](sd_bus_message* m) {
    int rc = sd_bus_message_append(m, "sss", o.policy.c_str(), text.c_str(), source.c_str());
    if (rc >= 0) rc = append_strings(m, o.command);
    if (rc >= 0) rc = append_strings(m, o.env);
    if (rc >= 0) rc = sd_bus_message_append(m, "hhh", 0, 1, 2);
    return rc;
  });
  if (!reply) return fail(reply.error().message());
  int code = kExitFailed;
  if (sd_bus_message_read(reply->get(), "i", &code) < 0) return fail("unexpected reply to RunSandbox");
  return code;
}

}  // namespace

void add_run(CLI::App& app, const Global& global, Action* run_action) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("run", "Run one command in a new sandbox, then delete it");
  auto* named = cmd->add_option("--policy", options->policy,
                                "Named policy (default: the daemon's default)");
  cmd->add_option("--policy-file", options->policy_file, "A policy file of your own instead")
      ->excludes(named);
  cmd->add_option("--env", options->env, "KEY=VALUE added to the command's environment");
  cmd->add_option("command", options->command, "-- CMD ARGS...")->required();
  cmd->callback([&global, run_action, options] {
    *run_action = [&global, options] { return run(global, *options); };
  });
}

}  // namespace openshell::ctl
