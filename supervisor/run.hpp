// `openshell-supervisor run`: one sandbox, start to finish.
#pragma once

#include "core/event_sink.hpp"
#include "core/policy.hpp"
#include "core/result.hpp"
#include "supervisor/network/sandbox_network.hpp"
#include "supervisor/launch/plan.hpp"

namespace openshell::supervisor {

// Exit status of the supervisor itself when it could not run the agent (as env(1) and
// container runtimes do); the agent's own status passes through unchanged otherwise.
inline constexpr int kExitSetupFailed = 125;
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

// --status-fd: "launched PID\n" (PID: the supervisor's) once the agent runs, "exit N\n" once
// the sandbox is gone. Written with MSG_NOSIGNAL where it is a socket: a reader that went away
// costs no signal.
class StatusReporter {
 public:
  explicit StatusReporter(int fd) : fd_(fd) {}
  [[nodiscard]] int fd() const { return fd_; }
  void launched();
  // Only the first call writes: run_sandbox reports as soon as the sandbox is gone, before its
  // own teardown (the proxy, the network thread: ~2 ms); the caller reports every other end.
  void exited(int code);

 private:
  int fd_;
  bool exited_ = false;
};

// Builds the sandbox in `network` (started by the caller as early as it can: its thread, loading
// libnftables and the first commit, is the longest part of a start and overlaps with
// everything up to the agent's exec), runs the command, forwards signals, cleans up. Returns the
// agent's exit status as a shell reports it (128+N for signal N).
Result<int> run_sandbox(const policy::Policy& policy, const RunOptions& options, EventSink& events,
                        SandboxNetwork& network);

}  // namespace openshell::supervisor
