// Parent side of a sandbox launch: clone the sandbox's init into its namespaces and cgroup,
// write its id maps, and wait until the agent has exec'd (or a setup step has failed).
#pragma once

#include <sys/types.h>

#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "supervisor/network/sandbox_network.hpp"
#include "supervisor/launch/plan.hpp"
#include "supervisor/launch/stage.hpp"
#include "sys/cgroup.hpp"
#include "sys/process.hpp"

namespace openshell::supervisor {

struct LaunchedSandbox {
  sys::ChildProcess init;  // pid 1 of the sandbox; killed and reaped if dropped
  UniqueFd status_read;    // the agent's raw wait status arrives here
  pid_t agent_pid = -1;    // host pid of the agent, -1 if it could not be found
  // The seccomp listener for the sandbox's connect(2) calls (sys::build_connect_notify); every
  // connect in the sandbox waits until it is answered. Empty when the kernel could not install
  // the filter, and connect_listener_error then says why.
  UniqueFd connect_listener;
  int connect_listener_error = 0;
  // Init's exec channel (exec_wire.hpp): requests to run a command in the sandbox go here.
  UniqueFd exec_channel;
};

// On failure the Error names the stage and errno, and *failure holds the child's report
// (stage kNone if the failure was the parent's).
Result<LaunchedSandbox> launch_sandbox(LaunchPlan& plan, const sys::Cgroup& cgroup,
                                       SandboxNetwork& network, StageRecord* failure);

// Removes the sandbox's cgroup if the supervisor dies without doing so (kill -9): a small
// process outside the sandbox that waits for the supervisor's end of a pipe to close.
class CgroupReaper {
 public:
  static Result<CgroupReaper> spawn(const sys::Cgroup& cgroup);
  // Normal end: the supervisor has cleaned up; let the reaper check and exit.
  void finish();

 private:
  CgroupReaper(sys::ChildProcess child, UniqueFd pipe)
      : child_(std::move(child)), pipe_(std::move(pipe)) {}
  sys::ChildProcess child_;
  UniqueFd pipe_;
};

}  // namespace openshell::supervisor
