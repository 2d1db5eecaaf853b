// Landlock: filesystem access rules for the agent, as defence in depth under the mount
// namespace (which already hides unlisted paths). The ruleset is planned in the parent (ABI probe,
// access masks) and applied in the pre-exec child with raw syscalls only.
//
// The installed kernel headers (6.1) stop at ABI 2; the constants for ABI 3..7 are defined here,
// guarded, so a newer header wins.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace openshell::sys {

// 0 when Landlock is unsupported or disabled; otherwise the highest ABI the kernel offers.
int landlock_abi();

struct LandlockRule {
  std::string path;     // path inside the sandbox's root, opened O_PATH in the child
  uint64_t access = 0;  // LANDLOCK_ACCESS_FS_* granted beneath path
};

struct LandlockPlan {
  int abi = 0;              // 0: do not apply
  uint64_t handled_fs = 0;  // every fs right this ABI knows
  uint64_t scoped = 0;      // ABI >= 6: abstract unix sockets and signals stay in the domain
  std::vector<LandlockRule> rules;
};

// Access masks by role, trimmed to what `abi` knows.
uint64_t landlock_handled_fs(int abi);
uint64_t landlock_read_exec(int abi);          // read-only paths: read, list, execute
uint64_t landlock_read_write(int abi);         // read-write paths: everything
uint64_t landlock_device_rw(int abi);          // /dev: read/write/ioctl existing nodes, no creation
uint64_t landlock_file_only(uint64_t access);  // rights valid on a non-directory

// Pre-exec child: builds the ruleset, adds the rules, restricts the calling thread.
// Requires no_new_privs. Returns 0 or an errno; *failed_rule gets the rule index on failure
// (-1 when the failure is not tied to a rule). No allocation.
int landlock_apply_in_child(const LandlockPlan& plan, int* failed_rule);

}  // namespace openshell::sys
