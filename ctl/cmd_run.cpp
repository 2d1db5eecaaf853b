// openshellctl run [--policy P] -- CMD: a sandbox for one command. Creates it, runs CMD with this
// process's stdio, deletes it (workspace included), and exits with CMD's code.
#include <systemd/sd-bus.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
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

std::string random_name() {
  unsigned char bytes[4] = {};
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!::read(fd, bytes, sizeof bytes);
    ::close(fd);
  }
  char name[16];
  std::snprintf(name, sizeof name, "run-%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return name;
}

int run(const Global& global, const Options& o) {
  auto bus = connect(global.bus);
  if (!bus) return fail(bus.error().message());
  const std::string name = random_name();
  const std::vector<std::string> hold = {"/bin/sleep", "infinity"};
  auto created = create_sandbox(bus->get(), name, o.policy, o.policy_file, hold);
  if (!created) return fail(created.error().message());
  auto reply = call(bus->get(), "Exec", [&](sd_bus_message* m) {
    int rc = sd_bus_message_append(m, "s", name.c_str());
    if (rc >= 0) rc = append_strings(m, o.command);
    if (rc >= 0) rc = append_strings(m, o.env);
    if (rc >= 0) rc = sd_bus_message_append(m, "shhh", "", 0, 1, 2);
    return rc;
  });
  int code = kExitFailed;
  if (!reply) {
    (void)fail(reply.error().message());
  } else if (sd_bus_message_read(reply->get(), "i", &code) < 0) {
    code = fail("unexpected reply to Exec");
  }
  auto deleted = call(bus->get(), "DeleteSandbox",
                      [&](sd_bus_message* m) { return sd_bus_message_append(m, "s", name.c_str()); });
  if (!deleted) (void)fail("sandbox " + name + " was not deleted: " + deleted.error().message());
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
