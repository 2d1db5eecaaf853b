// The systemd driver (DESIGN.md §1, §2 step 1): each sandbox's supervisor runs as a transient
// service, openshell-sandbox-<name>.service, in openshell.slice, started over the system bus
// with Delegate=yes (the supervisor builds the sandbox's cgroup inside its own) and the
// policy's [resources] as unit limits. systemd then owns the process tree: the unit outlives
// openshelld, `systemctl status` shows it, and its output goes to the journal.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/policy.hpp"
#include "core/result.hpp"
#include "openshelld/driver.hpp"
#include "openshelld/netns_spare.hpp"

struct sd_bus;
struct sd_bus_slot;

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

// Starts each unit without waiting on the loop (StartTransientUnit is sent, its reply comes to
// a callback); the status channel is the unit's stdin (StandardInputFileDescriptor=, which
// systemd passes to the process), since a unit takes no other descriptors, and the spare
// network namespace is sent down it (--netns-on-status).
class SystemdDriver final : public Driver {
 public:
  // Connects to the system bus and attaches it to `event`.
  static Result<std::unique_ptr<SystemdDriver>> connect(sd_event* event);
  SystemdDriver(const SystemdDriver&) = delete;
  SystemdDriver& operator=(const SystemdDriver&) = delete;
  ~SystemdDriver() override;

  [[nodiscard]] const char* name() const override { return "systemd"; }
  [[nodiscard]] bool passes_stdio() const override { return false; }
  Result<sys::ProcessHandle> start(Launch launch, std::function<void(Error)> failed) override;
  // Checked against the unit: the process must be in openshell-sandbox-<name>.service's cgroup.
  // No pid (a record made before the supervisor reported it): the unit's MainPID.
  Result<sys::ProcessHandle> adopt(const std::string& sandbox, int pid) override;
  [[nodiscard]] std::string log_hint(const std::string& sandbox) const override;
  // The unit's state ("failed", "inactive, start job queued", ...).
  std::string last_words(const std::string& sandbox) override;

 private:
  explicit SystemdDriver(sd_bus* bus);
  struct Call;  // a StartTransientUnit awaiting its reply

  sd_bus* bus_;
  NetnsSpare spare_;
  std::map<Call*, std::unique_ptr<Call>> calls_;
};

}  // namespace openshell::daemon
