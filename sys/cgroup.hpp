// Sandbox cgroups on cgroup v2 (pure unified hierarchy) and v1 (legacy or hybrid hosts, where
// memory/pids/cpu are bound to v1 hierarchies). One Cgroup object per sandbox; it owns the
// directories it created and removes them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::sys {

enum class CgroupVersion { kV2, kV1 };

struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV2;
  std::string v2_root;                           // v2: mount point of the unified hierarchy
  std::map<std::string, std::string> v1_mounts;  // v1: controller -> mount point

  // Whether a limit on this controller can be applied.
  [[nodiscard]] bool has_controller(const std::string& controller) const;
};

// Reads /proc/self/mountinfo. A cgroup2 mount at /sys/fs/cgroup means v2; otherwise the v1
// controller mounts are used.
// `want` forces a version (a hybrid host has both); nullopt picks v2 only when it is the host's
// primary hierarchy.
Result<CgroupLayout> detect_cgroup_layout(std::optional<CgroupVersion> want = std::nullopt);

// For a process whose own cgroup was delegated to it (systemd's Delegate=yes): returns that
// cgroup's path relative to the hierarchy's root, to create sandbox cgroups under. On v2 the
// process first moves itself into a `supervisor` leaf below it, since a v2 cgroup with
// processes of its own cannot enable controllers for its children.
Result<std::string> adopt_delegated_cgroup(const CgroupLayout& layout);

struct CgroupLimits {
  std::optional<uint64_t> memory_max;   // bytes
  std::optional<uint32_t> cpu_percent;  // 100 = one CPU
  std::optional<uint64_t> pids_max;
};

class Cgroup {
 public:
  // Creates <root>/<parent>/<name> (per controller on v1) and applies the limits. A limit whose
  // controller is not available is an error: we never run a sandbox without a limit it asked for.
  static Result<Cgroup> create(const CgroupLayout& layout, const std::string& parent,
                               const std::string& name, const CgroupLimits& limits);

  Cgroup(Cgroup&&) = default;
  Cgroup& operator=(Cgroup&&) = default;
  ~Cgroup() = default;  // removal is explicit (remove()); a crashed owner leaves it to the reaper

  [[nodiscard]] CgroupVersion version() const { return version_; }
  // v2: directory fd for clone3(CLONE_INTO_CGROUP); -1 on v1.
  [[nodiscard]] int dir_fd() const { return dir_fd_.get(); }
  [[nodiscard]] const std::vector<std::string>& paths() const { return paths_; }

  // The cgroup.procs that lists every process of the sandbox.
  [[nodiscard]] std::string procs_file() const;
  Status add_pid(pid_t pid) const;
  [[nodiscard]] bool populated() const;
  // SIGKILLs every process in the cgroup (cgroup.kill when the kernel has it).
  void kill_all() const;
  // Kills what is left, waits (bounded) until empty, removes the directories.
  Status remove() const;
  // OOM kills recorded for this cgroup so far.
  [[nodiscard]] uint64_t oom_kills() const;

 private:
  Cgroup() = default;
  CgroupVersion version_ = CgroupVersion::kV2;
  std::vector<std::string> paths_;  // v2: one; v1: one per controller
  std::string memory_path_;         // where memory.* lives (empty if none)
  UniqueFd dir_fd_;
};

}  // namespace openshell::sys
