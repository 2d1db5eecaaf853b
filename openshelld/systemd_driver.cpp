#include "openshelld/systemd_driver.hpp"

#include <systemd/sd-bus.h>

#include <cstring>

#include "core/bus_ptr.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::daemon {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr uint64_t kSupervisorMemory = 64ULL << 20;
constexpr uint64_t kSupervisorTasks = 64;
constexpr uint64_t kDefaultTasks = 4096;  // the supervisor's default for the sandbox (run.cpp)
constexpr uint64_t kStopTimeoutUsec = 30'000'000;

Error bus_error(const std::string& what, int r, const sd_bus_error* error) {
  std::string message = what;
  if (error != nullptr && sd_bus_error_is_set(error)) {
    message += ": ";
    message += error->message != nullptr ? error->message : error->name;
  }
  return Error::from_errno(message, -r);
}

// Appends one (sv) property of a basic type.
template <typename T>
int property(sd_bus_message* m, const char* name, const char* type, T value) {
  return sd_bus_message_append(m, "(sv)", name, type, value);
}

int append_exec_start(sd_bus_message* m, const std::vector<std::string>& argv) {
  std::vector<char*> strv;
  for (const auto& a : argv) strv.push_back(const_cast<char*>(a.c_str()));
  strv.push_back(nullptr);
  int r;
  if ((r = sd_bus_message_open_container(m, 'r', "sv")) < 0 ||
      (r = sd_bus_message_append(m, "s", "ExecStart")) < 0 ||
      (r = sd_bus_message_open_container(m, 'v', "a(sasb)")) < 0 ||
      (r = sd_bus_message_open_container(m, 'a', "(sasb)")) < 0 ||
      (r = sd_bus_message_open_container(m, 'r', "sasb")) < 0 ||
      (r = sd_bus_message_append(m, "s", argv.front().c_str())) < 0 ||
      (r = sd_bus_message_append_strv(m, strv.data())) < 0 ||
      (r = sd_bus_message_append(m, "b", 0)) < 0)
    return r;
  for (int i = 0; i < 4; ++i)
    if ((r = sd_bus_message_close_container(m)) < 0) return r;
  return 0;
}

}  // namespace

UnitLimits unit_limits(const policy::Resources& resources) {
  UnitLimits limits;
  if (resources.memory_max && *resources.memory_max != policy::kUnlimited)
    limits.memory_max = *resources.memory_max + kSupervisorMemory;
  const uint64_t tasks = resources.pids_max.value_or(kDefaultTasks);
  if (tasks != policy::kUnlimited) limits.tasks_max = tasks + kSupervisorTasks;
  // CPUQuota= is per second of wall time: percent of one CPU x 10 ms. The supervisor's share
  // is not added: a proxy starved with its agent slows the agent, not the host.
  if (resources.cpu_max && resources.cpu_max->percent != policy::kUnlimitedCpu)
    limits.cpu_quota_per_sec_usec = uint64_t{resources.cpu_max->percent} * 10'000;
  return limits;
}

std::string sandbox_unit(const std::string& sandbox_name) {
  return "openshell-sandbox-" + sandbox_name + ".service";
}

struct SystemdDriver::Call {
  SystemdDriver* driver = nullptr;
  std::string unit;
  std::function<void(Error)> failed;
  sd_bus_slot* slot = nullptr;
  ~Call() { sd_bus_slot_unref(slot); }
};

Result<std::unique_ptr<SystemdDriver>> SystemdDriver::connect(sd_event* event) {
  sd_bus* bus = nullptr;
  if (int r = sd_bus_open_system(&bus); r < 0)
    return Error::from_errno("connecting to the system bus for the systemd driver", -r);
  if (int r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL); r < 0) {
    sd_bus_unref(bus);
    return Error::from_errno("attaching the system bus to the loop", -r);
  }
  return std::unique_ptr<SystemdDriver>(new SystemdDriver(bus));
}

SystemdDriver::SystemdDriver(sd_bus* bus) : bus_(bus) { spare_.start(); }

SystemdDriver::~SystemdDriver() {
  calls_.clear();  // their slots first: no reply may reach a driver that is gone
  sd_bus_flush_close_unref(bus_);
}

std::string SystemdDriver::log_hint(const std::string& sandbox) const {
  return "journalctl -u " + sandbox_unit(sandbox);
}

Result<sys::ProcessHandle> SystemdDriver::start(Launch launch, std::function<void(Error)> failed) {
  const std::string unit = sandbox_unit(launch.sandbox);
  // Options of `run` (args[1]): the status channel is our stdin; the cgroup is the unit's.
  std::vector<std::string> options = {"--status-fd", "0", "--cgroup-delegated"};
  // The spare namespace goes down the status channel, before the unit starts (a unit takes
  // no descriptor but its stdio, and a namespace pinned in our mount namespace, private under
  // the unit's hardening, would be invisible to it).
  if (UniqueFd netns = spare_.take(); netns) {
    const char tag = 'n';
    const int passed[1] = {netns.get()};
    if (sys::send_message(launch.status_ours, &tag, 1, passed) == 0)
      options.emplace_back("--netns-on-status");
  }
  std::vector<std::string> argv = std::move(launch.args);
  if (argv.size() < 2) return Error::invalid("no supervisor command");
  argv.insert(argv.begin() + 2, options.begin(), options.end());
  argv.emplace_back("--");
  argv.insert(argv.end(), launch.command.begin(), launch.command.end());
  const UnitLimits limits = unit_limits(launch.resources);

  sd_bus_message* m = nullptr;
  int r = sd_bus_message_new_method_call(bus_, &m, kSystemd, "/org/freedesktop/systemd1",
                                         "org.freedesktop.systemd1.Manager",
                                         "StartTransientUnit");
  if (r < 0) return bus_error("building StartTransientUnit", r, nullptr);
  const BusMessage held(m);
  auto build = [&]() -> int {
    int q;
    if ((q = sd_bus_message_append(m, "ss", unit.c_str(), "fail")) < 0) return q;
    if ((q = sd_bus_message_open_container(m, 'a', "(sv)")) < 0) return q;
    const std::string description = "openshell sandbox " + launch.sandbox;
    if ((q = property(m, "Description", "s", description.c_str())) < 0 ||
        (q = property(m, "Slice", "s", kSandboxSlice)) < 0 ||
        (q = property(m, "Type", "s", "exec")) < 0 ||
        // The supervisor creates the sandbox's cgroup inside the unit's (--cgroup-delegated).
        (q = property(m, "Delegate", "b", 1)) < 0 ||
        // SIGTERM to the supervisor alone: it stops its agent and cleans up; what is left
        // after TimeoutStopSec gets SIGKILL.
        (q = property(m, "KillMode", "s", "mixed")) < 0 ||
        (q = property(m, "TimeoutStopUSec", "t", kStopTimeoutUsec)) < 0 ||
        // A failed unit goes too, so the name can be started again; its log stays in the
        // journal.
        (q = property(m, "CollectMode", "s", "inactive-or-failed")) < 0 ||
        // The status channel as stdin; the supervisor's own lines to the journal (not to
        // stdin's socket, where they would go by default).
        (q = property(m, "StandardInputFileDescriptor", "h", launch.status.get())) < 0 ||
        (q = property(m, "StandardOutput", "s", "journal")) < 0 ||
        (q = property(m, "StandardError", "s", "journal")) < 0)
      return q;
    if (limits.memory_max && (q = property(m, "MemoryMax", "t", *limits.memory_max)) < 0)
      return q;
    if (limits.tasks_max && (q = property(m, "TasksMax", "t", *limits.tasks_max)) < 0) return q;
    if (limits.cpu_quota_per_sec_usec &&
        (q = property(m, "CPUQuotaPerSecUSec", "t", *limits.cpu_quota_per_sec_usec)) < 0)
      return q;
    if ((q = append_exec_start(m, argv)) < 0) return q;
    if ((q = sd_bus_message_close_container(m)) < 0) return q;
    return sd_bus_message_append(m, "a(sa(sv))", 0);
  };
  if (r = build(); r < 0) return bus_error("building StartTransientUnit", r, nullptr);
  auto call = std::make_unique<Call>();
  call->driver = this;
  call->unit = unit;
  call->failed = std::move(failed);
  auto on_reply = [](sd_bus_message* reply, void* userdata, sd_bus_error*) -> int {
    auto* c = static_cast<Call*>(userdata);
    auto owned = std::move(c->driver->calls_.at(c));  // gone at the end of this scope
    c->driver->calls_.erase(c);
    if (const sd_bus_error* e = sd_bus_message_get_error(reply); e != nullptr) {
      if (c->failed)
        c->failed(bus_error("starting unit " + c->unit, -sd_bus_message_get_errno(reply), e));
    }
    return 0;
  };
  if (r = sd_bus_call_async(bus_, &call->slot, m, on_reply, call.get(), 0); r < 0)
    return bus_error("starting unit " + unit, r, nullptr);
  Call* raw = call.get();
  calls_[raw] = std::move(call);
  return sys::ProcessHandle();  // its "launched PID" names it
}

Result<sys::ProcessHandle> SystemdDriver::adopt(const std::string& sandbox, int pid) {
  if (pid <= 0) {
    // Recorded before its supervisor said who it is (a daemon that died meanwhile): the unit's
    // main process, asked of systemd (once, at the daemon's start), checked below all the same.
    char* path = nullptr;
    if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", sandbox_unit(sandbox).c_str(),
                           &path) < 0)
      return Error::from_errno("naming unit " + sandbox_unit(sandbox), ENOMEM);
    BusError error;
    uint32_t main_pid = 0;
    const int r = sd_bus_get_property_trivial(bus_, kSystemd, path,
                                              "org.freedesktop.systemd1.Service", "MainPID",
                                              error.get(), 'u', &main_pid);
    std::free(path);
    if (r < 0 || main_pid == 0)
      return Error::from_errno("unit " + sandbox_unit(sandbox) + " has no main process", ESRCH);
    pid = static_cast<int>(main_pid);
  }
  auto process = sys::ProcessHandle::open(pid);
  if (!process) return process.error();
  auto cgroup = process->cgroup();
  if (!cgroup) return cgroup.error();
  const std::string unit = "/" + sandbox_unit(sandbox);
  const auto at = cgroup->find(unit);
  const size_t end = at + unit.size();
  if (at == std::string::npos || (end != cgroup->size() && (*cgroup)[end] != '/'))
    return Error::from_errno("process " + std::to_string(pid) + " is not in unit " +
                                 sandbox_unit(sandbox),
                             ESRCH);
  return process;
}

std::string SystemdDriver::last_words(const std::string& sandbox) {
  const std::string unit = sandbox_unit(sandbox);
  char* path = nullptr;
  if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path) < 0)
    return "unknown";
  sd_bus_error error = SD_BUS_ERROR_NULL;
  // The job first: StartTransientUnit returns with the start job queued, and the unit is
  // inactive until it runs. Read the other way round, a job that finishes between the two
  // reads would look like a unit that never started.
  sd_bus_message* reply = nullptr;
  uint32_t job = 0;
  const char* job_path = nullptr;
  if (sd_bus_get_property(bus_, kSystemd, path, "org.freedesktop.systemd1.Unit", "Job", &error,
                          &reply, "(uo)") < 0 ||
      sd_bus_message_read(reply, "(uo)", &job, &job_path) < 0)
    job = 0;
  sd_bus_message_unref(reply);
  sd_bus_error_free(&error);
  char* active = nullptr;
  std::string result;
  if (sd_bus_get_property_string(bus_, kSystemd, path, "org.freedesktop.systemd1.Unit",
                                 "ActiveState", &error, &active) < 0) {
    result = std::string("unknown (") + (error.message != nullptr ? error.message : "") + ")";
  } else {
    result = active;
    std::free(active);
    if (result == "inactive" && job != 0) result = "inactive, start job queued";
  }
  sd_bus_error_free(&error);
  std::free(path);
  return "unit " + result;
}


}  // namespace openshell::daemon
