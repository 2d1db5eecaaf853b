#include "tests/support/cgroups.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>

#include "tests/support/events.hpp"
#include "tests/support/harness.hpp"

namespace openshell::testing {
namespace {

// The host's mount points (mountinfo field 5), without /run/netns/*: tests running in parallel
// create and remove network namespaces, which are bind mounts there.
std::set<std::string> host_mount_points() {
  std::set<std::string> points;
  std::istringstream in(read_text("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string field, point;
    for (int i = 0; i < 5 && fields >> field; ++i) point = field;
    if (point.rfind("/run/netns/", 0) != 0) points.insert(point);
  }
  return points;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::vector<std::string> expected_cgroup_dirs(const std::string& name,
                                              std::optional<sys::CgroupVersion> version) {
  auto layout = sys::detect_cgroup_layout(version);
  REQUIRE(layout.ok());
  std::vector<std::string> dirs;
  if (layout->version == sys::CgroupVersion::kV2) {
    dirs.push_back(layout->v2_root + "/openshell/" + name);
  } else {
    for (const auto& [ctrl, mount] : layout->v1_mounts)
      dirs.push_back(mount + "/openshell/" + name);
  }
  return dirs;
}

CgroupLimitValues read_cgroup_limits(const std::string& name) {
  auto layout = sys::detect_cgroup_layout();
  REQUIRE(layout.ok());
  CgroupLimitValues v;
  if (layout->version == sys::CgroupVersion::kV2) {
    const std::string dir = layout->v2_root + "/openshell/" + name;
    v.memory_max = trim(read_text(dir + "/memory.max"));
    v.pids_max = trim(read_text(dir + "/pids.max"));
    std::string cpu = trim(read_text(dir + "/cpu.max"));
    v.cpu_quota = cpu.substr(0, cpu.find(' '));
  } else {
    v.memory_max = trim(
        read_text(layout->v1_mounts["memory"] + "/openshell/" + name + "/memory.limit_in_bytes"));
    v.pids_max = trim(read_text(layout->v1_mounts["pids"] + "/openshell/" + name + "/pids.max"));
    v.cpu_quota =
        trim(read_text(layout->v1_mounts["cpu"] + "/openshell/" + name + "/cpu.cfs_quota_us"));
  }
  return v;
}

void check_kill9_cleanup(std::optional<sys::CgroupVersion> version) {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string name = unique_name("k9");
  const std::string events_file = dir.path() + "/events.jsonl";
  const std::set<std::string> mounts_before = host_mount_points();
  std::vector<std::string> argv = {supervisor_bin(), "run", "--policy-file", policy,
                                   "--name",         name,  "--events",      events_file};
  if (version) argv.push_back(*version == sys::CgroupVersion::kV2 ? "--cgroup=v2" : "--cgroup=v1");
  argv.insert(argv.end(), {"--", "/bin/sh", "-c", "sleep 60 & sleep 60"});
  pid_t supervisor = spawn_process(argv);
  REQUIRE(
      eventually([&] { return read_text(events_file).find("\"Launch\"") != std::string::npos; }));
  auto launch = find_event(read_events(events_file), 1007, "Launch");
  REQUIRE(launch != nullptr);
  const pid_t agent = launch["process"]["pid"].get<pid_t>();
  REQUIRE(agent > 0);
  const auto dirs = expected_cgroup_dirs(name, version);
  // v1 creates only the controllers it needs (pids here); v2 has the one directory.
  REQUIRE(std::count_if(dirs.begin(), dirs.end(),
                        [](const std::string& d) { return path_exists(d); }) >= 1);
  // The agent's mount namespace is not the host's.
  CHECK(read_text("/proc/" + std::to_string(agent) + "/mountinfo") !=
        read_text("/proc/self/mountinfo"));

  REQUIRE(kill(supervisor, SIGKILL) == 0);
  int status = 0;
  REQUIRE(waitpid(supervisor, &status, 0) == supervisor);

  CHECK(eventually([&] { return kill(agent, 0) != 0 && errno == ESRCH; }));
  for (const auto& d : dirs) CHECK(eventually([&] { return !path_exists(d); }));
  CHECK(host_mount_points() == mounts_before);
  // Nothing of this sandbox is left running, the reaper included.
  CHECK(eventually([&] {
    return run_process({"/bin/ps", "-eo", "args"}).out.find(name) == std::string::npos;
  }));
}

void check_delegated_cgroup(sys::CgroupVersion version) {
  auto layout = sys::detect_cgroup_layout(version);
  REQUIRE(layout.ok());
  const bool v2 = version == sys::CgroupVersion::kV2;
  const std::string root = v2 ? layout->v2_root : layout->v1_mounts.at("pids");
  const std::string name = unique_name("dg");
  const std::string unit = root + "/osh-test-" + name;  // stands in for the unit's cgroup
  REQUIRE(::mkdir(unit.c_str(), 0755) == 0);
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string events_file = dir.path() + "/events.jsonl";
  // The shell moves itself into the "unit" and becomes the supervisor.
  const std::string script = "echo $$ > " + unit + "/cgroup.procs && exec \"$@\"";
  pid_t supervisor =
      spawn_process({"/bin/sh", "-c", script, "sh", supervisor_bin(), "run",
                     v2 ? "--cgroup=v2" : "--cgroup=v1", "--cgroup-delegated", "--policy-file",
                     policy, "--name", name, "--events", events_file, "--", "/bin/sleep", "60"});
  REQUIRE(
      eventually([&] { return read_text(events_file).find("\"Launch\"") != std::string::npos; }));
  auto launch = find_event(read_events(events_file), 1007, "Launch");
  REQUIRE(launch != nullptr);
  const std::string agent = std::to_string(launch["process"]["pid"].get<int>());
  CHECK(read_text(unit + "/" + name + "/cgroup.procs").find(agent + "\n") != std::string::npos);
  const std::string own = v2 ? unit + "/supervisor" : unit;
  CHECK(read_text(own + "/cgroup.procs").find(std::to_string(supervisor) + "\n") !=
        std::string::npos);
  if (v2) CHECK(read_text(unit + "/cgroup.procs").empty());  // no process left in the unit's
  REQUIRE(kill(supervisor, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(supervisor, &status, 0) == supervisor);
  CHECK(WEXITSTATUS(status) == 143);
  CHECK(eventually([&] { return !path_exists(unit + "/" + name); }));
  if (v2) ::rmdir((unit + "/supervisor").c_str());
  CHECK(::rmdir(unit.c_str()) == 0);
}

}  // namespace openshell::testing
