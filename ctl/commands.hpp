// openshellctl's command table (CLI11): one file per subcommand, each registering itself here.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace openshell::ctl {

// Exit statuses (docs/man/openshellctl.1.scd, EXIT STATUS): a command's own code passes through for
// exec.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the daemon refused or failed (its message on stderr)
inline constexpr int kExitUsage = 2;   // bad arguments: one line on stderr
// policy reload: the valid policies were loaded, but some running sandboxes keep their old
// revision (they need re-creation, or the update failed); each is listed.
inline constexpr int kExitPartial = 3;
// exec and run, as a shell and docker run: the command cannot be executed, or is not found.
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

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
void add_provider(CLI::App& app, const Global& global, Action* run);
void add_inference(CLI::App& app, const Global& global, Action* run);

int ctl_main(int argc, char** argv);

// The names `logs --class` takes (besides a class uid).
std::vector<std::string> log_class_names();

// `openshellctl __complete WORD...` (ctl/complete.cpp): the candidates for the last word, for
// the shell completions; ":files" or ":dirs" asks the shell for path names.
std::vector<std::string> complete(CLI::App& app, const std::vector<std::string>& words);

// "openshellctl: <message>" on stderr; returns kExitFailed.
int fail(const std::string& message);
// The same for exec and run's call: kExitNotFound or kExitCannotExecute when the daemon said
// the command could not be run, kExitFailed otherwise.
int fail_command(const Error& error);

}  // namespace openshell::ctl
