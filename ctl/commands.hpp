// openshellctl's command table (CLI11): one file per subcommand, each registering itself here.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace openshell::ctl {

// Exit statuses (docs/openshellctl.1, EXIT STATUS): a command's own code passes through for exec.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the daemon refused or failed (its message on stderr)
inline constexpr int kExitUsage = 2;   // bad arguments: one line on stderr

struct Global {
  std::string bus;    // --bus ADDRESS
  bool json = false;  // --json
};

// Each subcommand adds itself to `app` and sets *run to its action when chosen.
using Action = std::function<int()>;
void add_status(CLI::App& app, const Global& global, Action* run);
void add_sandbox(CLI::App& app, const Global& global, Action* run);
void add_exec(CLI::App& app, const Global& global, Action* run);
void add_connect(CLI::App& app, const Global& global, Action* run);
void add_upload(CLI::App& app, const Global& global, Action* run);
void add_download(CLI::App& app, const Global& global, Action* run);
void add_policy(CLI::App& app, const Global& global, Action* run);
void add_run(CLI::App& app, const Global& global, Action* run);
void add_logs(CLI::App& app, const Global& global, Action* run);

int ctl_main(int argc, char** argv);

// "openshellctl: <message>" on stderr; returns kExitFailed.
int fail(const std::string& message);

}  // namespace openshell::ctl
