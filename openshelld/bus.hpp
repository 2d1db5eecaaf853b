// org.openshell.Manager1 on the bus (DESIGN.md §7): the sd-bus vtable, caller authorization
// (sd-bus credentials: root and members of group `openshell` may call; a non-root caller sees
// and acts only on sandboxes it created), and the translation to Manager calls. Every method
// trampoline catches: no exception unwinds through sd-bus.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "core/result.hpp"
#include "openshelld/manager.hpp"

struct sd_bus;
struct sd_event;

namespace openshell::daemon {

inline constexpr const char* kBusName = "org.openshell.Manager1";
inline constexpr const char* kObjectPath = "/org/openshell/Manager1";
inline constexpr const char* kInterface = "org.openshell.Manager1";

class BusService {
 public:
  // address empty: the system bus.
  static Result<std::unique_ptr<BusService>> start(sd_event* event, const std::string& address,
                                                   Manager& manager);
  ~BusService();
  BusService(const BusService&) = delete;
  BusService& operator=(const BusService&) = delete;

  Manager& manager() { return manager_; }
  // The calls running a command (Exec, ExecTty, RunSandbox) by their sender's unique name and
  // the call's serial, to the manager's ticket: how SignalCommand finds the caller's own.
  std::map<std::pair<std::string, uint64_t>, uint64_t>& commands() { return commands_; }

 private:
  BusService(sd_bus* bus, Manager& manager) : bus_(bus), manager_(manager) {}
  sd_bus* bus_;
  Manager& manager_;
  std::map<std::pair<std::string, uint64_t>, uint64_t> commands_;
};

}  // namespace openshell::daemon
