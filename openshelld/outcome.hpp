// How a sandbox's main process ended, read back from the events its supervisor wrote: the one
// record that outlives the supervisor and the daemon alike. What `sandbox get`, `sandbox list`
// and a failed create report instead of "the supervisor is gone".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace openshell::daemon {

struct Outcome {
  std::optional<int> exit_status;  // the command's code (128+N for signal N; 127 not found,
                                   // 126 cannot execute); none when the sandbox never ran it
  std::string reason;              // for a human: "exited with status 3", "command not found: ..."
};

// The last ending in `events` (JSON lines, oldest first): the main process's exit (Process
// Activity, Terminate), or a setup failure (Device Config State Change, Failed, with its stage).
// nullopt when the last thing said was a launch, or nothing was.
std::optional<Outcome> outcome_from_events(std::string_view events);

// The same from a sandbox's events file (only its last 256 KiB are read).
std::optional<Outcome> outcome_from_file(const std::string& path);

}  // namespace openshell::daemon
