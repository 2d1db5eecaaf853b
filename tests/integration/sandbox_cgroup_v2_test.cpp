// The cgroup v2 path, forced with --cgroup=v2. Production hosts are mostly pure v2; on hybrid
// hosts (v1 controllers plus a controller-less v2 tree) this still exercises placement with
// CLONE_INTO_CGROUP, cgroup.kill and removal.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "sys/cgroup.hpp"
#include "tests/support/cgroups.hpp"
#include "tests/support/events.hpp"
#include "tests/support/harness.hpp"

using namespace openshell::testing;
using openshell::sys::CgroupVersion;

TEST_CASE("a sandbox runs in its own v2 cgroup, which is removed when it ends") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string name = unique_name("v2");
  const std::string events_file = dir.path() + "/events.jsonl";
  pid_t pid = spawn_process({supervisor_bin(), "run", "--cgroup=v2", "--policy-file", policy,
                             "--name", name, "--events", events_file, "--", "/bin/sleep", "60"});
  REQUIRE(
      eventually([&] { return read_text(events_file).find("\"Launch\"") != std::string::npos; }));
  const auto dirs = expected_cgroup_dirs(name, CgroupVersion::kV2);
  REQUIRE(dirs.size() == 1);
  auto launch = find_event(read_events(events_file), 1007, "Launch");
  const std::string agent = std::to_string(launch["process"]["pid"].get<int>());
  // Every process of the sandbox is in it: init and the agent.
  const std::string procs = read_text(dirs[0] + "/cgroup.procs");
  CHECK(procs.find(agent + "\n") != std::string::npos);
  CHECK(std::count(procs.begin(), procs.end(), '\n') == 2);
  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WEXITSTATUS(status) == 143);
  CHECK_FALSE(path_exists(dirs[0]));
}

TEST_CASE("kill -9 of the supervisor on v2 leaves nothing behind") {
  check_kill9_cleanup(CgroupVersion::kV2);
}

TEST_CASE("a limit whose v2 controller is missing is refused, never silently dropped") {
  auto layout = openshell::sys::detect_cgroup_layout(CgroupVersion::kV2);
  REQUIRE(layout.ok());
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy("", "[resources]\nmemory_max = \"128M\"\n"));
  const std::string name = unique_name("v2mem");
  auto r =
      run_process({supervisor_bin(), "run", "--cgroup=v2", "--policy-file", policy, "--name", name,
                   "--", "/bin/sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null; true"});
  if (layout->has_controller("memory")) {
    CHECK(r.exit_code == 0);
  } else {
    CHECK(r.exit_code == 125);
    CHECK(r.err.find("controller 'memory' is not available") != std::string::npos);
    CHECK_FALSE(path_exists(layout->v2_root + "/openshell/" + name));
  }
}

TEST_CASE("a delegated v2 cgroup (systemd Delegate=yes) holds the sandbox's; the supervisor leaves") {
  check_delegated_cgroup(CgroupVersion::kV2);
}
