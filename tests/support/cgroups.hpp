// Where a sandbox's cgroup lives, and the kill -9 scenario shared by the v1 and v2 tests.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sys/cgroup.hpp"

namespace openshell::testing {

// The directories the supervisor may create for sandbox `name` under the chosen hierarchy (on
// v1, one per controller we use; only those with a limit, and pids, are actually created).
std::vector<std::string> expected_cgroup_dirs(const std::string& name,
                                              std::optional<sys::CgroupVersion> version = {});

struct CgroupLimitValues {
  std::string memory_max, pids_max, cpu_quota;
};
CgroupLimitValues read_cgroup_limits(const std::string& name);

// Starts a sandbox, SIGKILLs its supervisor, and checks that the agent, the cgroup, the
// reaper and every mount are gone.
void check_kill9_cleanup(std::optional<sys::CgroupVersion> version);

// Runs a supervisor that starts inside a fresh cgroup of its own, as a systemd unit with
// Delegate=yes does, with --cgroup-delegated; checks that the sandbox's cgroup is built
// inside it (and on v2, that the supervisor moved itself into a `supervisor` leaf first).
void check_delegated_cgroup(sys::CgroupVersion version);

}  // namespace openshell::testing
