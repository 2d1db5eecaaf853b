#include "openshelld/systemd_driver.hpp"

#include <systemd/sd-bus.h>

#include <cstring>

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

Result<SystemdDriver> SystemdDriver::connect() {
  sd_bus* bus = nullptr;
  if (int r = sd_bus_open_system(&bus); r < 0)
    return Error::from_errno("connecting to the system bus for the systemd driver", -r);
  return SystemdDriver(bus);
}

SystemdDriver::~SystemdDriver() {
  if (bus_ != nullptr) sd_bus_flush_close_unref(bus_);
}

Status SystemdDriver::start(const std::string& unit, const std::string& description,
                            const std::vector<std::string>& argv, const UnitLimits& limits) {
  if (argv.empty()) return Error::invalid("no command for unit " + unit);
  sd_bus_message* m = nullptr;
  int r = sd_bus_message_new_method_call(bus_, &m, kSystemd, "/org/freedesktop/systemd1",
                                         "org.freedesktop.systemd1.Manager",
                                         "StartTransientUnit");
  if (r < 0) return bus_error("building StartTransientUnit", r, nullptr);
  auto build = [&]() -> int {
    int q;
    if ((q = sd_bus_message_append(m, "ss", unit.c_str(), "fail")) < 0) return q;
    if ((q = sd_bus_message_open_container(m, 'a', "(sv)")) < 0) return q;
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
        (q = property(m, "CollectMode", "s", "inactive-or-failed")) < 0)
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
  if (r = build(); r < 0) {
    sd_bus_message_unref(m);
    return bus_error("building StartTransientUnit", r, nullptr);
  }
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  r = sd_bus_call(bus_, m, 0, &error, &reply);
  sd_bus_message_unref(m);
  sd_bus_message_unref(reply);
  if (r < 0) {
    Error e = bus_error("starting unit " + unit, r, &error);
    sd_bus_error_free(&error);
    return e;
  }
  return {};
}

std::string SystemdDriver::state(const std::string& unit) {
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
  return result;
}

bool SystemdDriver::active(const std::string& unit) {
  const std::string s = state(unit);
  return s == "active" || s == "activating" || s == "reloading" ||
         s == "inactive, start job queued";
}

}  // namespace openshell::daemon
