// An interactive command in a sandbox (`exec --tty`, `connect`): openshellctl opens a pty, hands
// its slave to the daemon (ExecTty), where it becomes the command's controlling terminal, and
// relays between the master and this terminal (put in raw mode, its window size followed) until
// the command ends. The daemon and the supervisor never relay bytes.
#pragma once

#include <string>
#include <vector>

struct sd_bus;

namespace openshell::ctl {

// Returns the command's exit code (128+N for signal N), or kExitFailed with the reason printed.
int run_on_pty(sd_bus* bus, const std::string& sandbox, const std::vector<std::string>& argv,
               const std::vector<std::string>& env, const std::string& cwd);

}  // namespace openshell::ctl
