// openshellctl connect NAME: an interactive login shell in the sandbox, on a pty of its own
// (exec --tty with the shell the sandbox has: bash if it is there, sh otherwise).
#include "ctl/bus_client.hpp"
#include "ctl/commands.hpp"
#include "ctl/tty_session.hpp"

namespace openshell::ctl {

void add_connect(CLI::App& app, const Global& global, Action* run) {
  auto name = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("connect", "An interactive shell in a sandbox");
  cmd->add_option("name", *name, "Sandbox name")->type_name("SANDBOX")->required();
  cmd->callback([&global, run, name] {
    *run = [&global, name] {
      auto bus = connect(global.bus);
      if (!bus) return fail(bus.error().message());
      const std::vector<std::string> shell = {
          "/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"};
      return run_on_pty(bus->get(), *name, shell, {}, "");
    };
  });
}

}  // namespace openshell::ctl
