// `openshell-supervisor run`: one sandbox, start to finish.
#pragma once

#include "core/event_sink.hpp"
#include "core/policy.hpp"
#include "core/result.hpp"
#include "supervisor/launch/plan.hpp"

namespace openshell::supervisor {

// Exit status of the supervisor itself when it could not run the agent (as env(1) and
// container runtimes do); the agent's own status passes through unchanged otherwise.
inline constexpr int kExitSetupFailed = 125;
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

// Builds the sandbox, runs the command, forwards signals, cleans up. Returns the agent's exit
// status as a shell reports it (128+N for signal N).
Result<int> run_sandbox(const policy::Policy& policy, const RunOptions& options, EventSink& events);

}  // namespace openshell::supervisor
