// org.openshell.Manager1 on the bus (DESIGN.md §7): the sd-bus vtable, caller authorization
// (sd-bus credentials: root and members of group `openshell` may call; a non-root caller sees
// and acts only on sandboxes it created), and the translation to Manager calls. Every method
// trampoline catches: no exception unwinds through sd-bus.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "core/result.hpp"
#include "openshelld/manager.hpp"

struct sd_bus;
struct sd_bus_message;
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

  // WatchSandboxes: the caller (by its unique name) gets SandboxChanged and
  // PolicyGenerationChanged for the sandboxes it may see, sent to it alone (on a bus shared by
  // every user, a broadcast would name everyone's sandboxes to everyone), until it leaves.
  static constexpr size_t kMaxWatchers = 256;
  Status watch(sd_bus_message* call, uid_t uid);

 private:
  BusService(sd_bus* bus, Manager& manager) : bus_(bus), manager_(manager) {}
  struct Watcher;
  struct WatcherRelease {
    void operator()(Watcher* w) const;
  };
  void forget_watcher(const std::string& unique_name);
  // To every watcher that may see `record`'s sandbox.
  void signal_watchers(const SandboxRecord& record, const char* member,
                       const std::function<int(sd_bus_message*)>& append);

  sd_bus* bus_;
  Manager& manager_;
  std::map<std::pair<std::string, uint64_t>, uint64_t> commands_;
  std::map<std::string, std::unique_ptr<Watcher, WatcherRelease>> watchers_;
};

}  // namespace openshell::daemon
