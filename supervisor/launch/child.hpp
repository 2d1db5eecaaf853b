// The sandbox's first process (pid 1 of its pid namespace), from clone to the agent's exec.
// Pre-exec regime: no allocation, no logging, no exceptions. A failing step writes a
// StageRecord to error_write and _exits.
#pragma once

#include "supervisor/launch/plan.hpp"

namespace openshell::supervisor {

struct ChildChannels {
  int sync_read = -1;     // parent -> child: one byte per go-ahead; EOF means the parent died
  int notify_write = -1;  // child -> parent: "user namespace created, write my id maps"
  int error_write = -1;   // child -> parent (SEQPACKET): kAboutToExec from the agent, then a
                          // StageRecord on failure or EOF once the agent has exec'd
  int status_write = -1;  // init -> parent: the agent's raw wait status when it exits
  int netns = -1;         // the sandbox's network namespace, joined first thing
  int exec = -1;          // SEQPACKET, both ways: exec requests in, ExecEvents out (exec_wire)
};

// Builds the root, drops privileges, forks the agent and then stays as its init: reaps,
// forwards signals to it, reports its wait status, and exits (taking every process left in
// the sandbox with it).
[[noreturn]] void run_sandbox_init_in_child(LaunchPlan& plan, const ChildChannels& channels);

}  // namespace openshell::supervisor
