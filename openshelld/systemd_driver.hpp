// The systemd driver (DESIGN.md §1, §2 step 1): each sandbox's supervisor runs as a transient
// service, openshell-sandbox-<name>.service, in openshell.slice, started over the system bus
// with Delegate=yes (the supervisor builds the sandbox's cgroup inside its own) and the
// policy's [resources] as unit limits. systemd then owns the process tree: the unit outlives
// openshelld, `systemctl status` shows it, and its output goes to the journal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/policy.hpp"
#include "core/result.hpp"

struct sd_bus;

namespace openshell::daemon {

inline constexpr const char* kSandboxSlice = "openshell.slice";

struct UnitLimits {
  std::optional<uint64_t> memory_max;             // MemoryMax=, bytes
  std::optional<uint64_t> tasks_max;              // TasksMax=
  std::optional<uint64_t> cpu_quota_per_sec_usec;  // CPUQuota=, as µs of CPU per second
};

// The unit's limits for a sandbox with these [resources]: the sandbox's own limits (which the
// supervisor also sets on the sandbox's cgroup, exactly) plus room for the supervisor itself
// (its proxy's buffers and threads), so the agent hits its limit before the supervisor does.
UnitLimits unit_limits(const policy::Resources& resources);

std::string sandbox_unit(const std::string& sandbox_name);

class SystemdDriver {
 public:
  static Result<SystemdDriver> connect();  // to the system bus
  SystemdDriver(SystemdDriver&& other) noexcept : bus_(other.bus_) { other.bus_ = nullptr; }
  SystemdDriver& operator=(SystemdDriver&&) = delete;
  ~SystemdDriver();

  // Starts argv[0] with argv as the unit `unit`; returns once systemd has forked it (Type=exec:
  // the job completes after the exec).
  Status start(const std::string& unit, const std::string& description,
               const std::vector<std::string>& argv, const UnitLimits& limits);
  // Started or on its way (a start job pending); false for a unit that failed or is gone.
  bool active(const std::string& unit);
  // ActiveState, or "inactive, start job queued", or "unknown (why)".
  std::string state(const std::string& unit);

 private:
  explicit SystemdDriver(sd_bus* bus) : bus_(bus) {}
  sd_bus* bus_;
};

}  // namespace openshell::daemon
