// [resources] limits through the host's primary cgroup hierarchy, and cleanup when the
// supervisor is killed outright.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "sys/cgroup.hpp"
#include "tests/support/cgroups.hpp"
#include "tests/support/events.hpp"
#include "tests/support/harness.hpp"

using namespace openshell::testing;

TEST_CASE("pids_max stops a fork bomb and the host survives") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy("", "[resources]\npids_max = 64\n"));
  const std::string name = unique_name("bomb");
  auto r = run_process({supervisor_bin(), "run", "--policy-file", policy, "--name", name, "--",
                        helper("fork_bomb"), "100000"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  // init and the bomb itself count against the limit, so fewer than 64 forks succeed.
  auto pos = r.out.find("forks=");
  REQUIRE(pos != std::string::npos);
  const int n = std::stoi(r.out.substr(pos + 6));
  CHECK(n > 0);
  CHECK(n < 64);
  CHECK(r.out.find("errno=EAGAIN") != std::string::npos);
  for (const auto& d : expected_cgroup_dirs(name)) CHECK_FALSE(path_exists(d));
  // The host can still fork.
  CHECK(run_process({"/bin/true"}).exit_code == 0);
}

TEST_CASE("allocating past memory_max kills the agent and the supervisor says why") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy("", "[resources]\nmemory_max = \"64M\"\n"));
  const std::string events_file = dir.path() + "/events.jsonl";
  auto r =
      run_process({supervisor_bin(), "run", "--policy-file", policy, "--name", unique_name("oom"),
                   "--events", events_file, "--", helper("alloc_mb"), "1024"});
  CHECK(r.exit_code == 137);
  CHECK(r.out.find("done") == std::string::npos);
  CHECK(r.err.find("OOM killer") != std::string::npos);
  auto exit = find_event(read_events(events_file), 1007, "Terminate");
  REQUIRE(exit != nullptr);
  CHECK(exit["exit_code"] == 137);
  CHECK(exit["status_detail"].get<std::string>().find("OOM killer") != std::string::npos);
}

TEST_CASE("limits are written to the sandbox's cgroup and SIGTERM ends the sandbox") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy("",
                                                "[resources]\nmemory_max = \"256M\"\n"
                                                "pids_max = 100\ncpu_max = \"50%\"\n"));
  const std::string name = unique_name("lim");
  const std::string events_file = dir.path() + "/events.jsonl";
  pid_t pid = spawn_process({supervisor_bin(), "run", "--policy-file", policy, "--name", name,
                             "--events", events_file, "--", "/bin/sleep", "60"});
  REQUIRE(
      eventually([&] { return read_text(events_file).find("\"Launch\"") != std::string::npos; }));
  auto values = read_cgroup_limits(name);
  CHECK(values.memory_max == "268435456");
  CHECK(values.pids_max == "100");
  CHECK(values.cpu_quota == "50000");
  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WEXITSTATUS(status) == 143);
  for (const auto& d : expected_cgroup_dirs(name)) CHECK_FALSE(path_exists(d));
}

// Issue 13.B: a policy without [resources] used to get no memory limit and /tmp and /dev/shm of
// half the host's RAM each (one agent filled 3 GiB of host memory through /tmp).
TEST_CASE("a policy without [resources] gets the default limits and sized tmpfs") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string name = unique_name("dflt");
  const std::string events_file = dir.path() + "/events.jsonl";
  pid_t pid = spawn_process({supervisor_bin(), "run", "--policy-file", policy, "--name", name,
                             "--events", events_file, "--", "/bin/sh", "-c",
                             "grep -E ' /(tmp|dev/shm|sandbox) ' /proc/mounts; sleep 60"},
                            dir.path() + "/out");
  REQUIRE(
      eventually([&] { return read_text(events_file).find("\"Launch\"") != std::string::npos; }));
  auto values = read_cgroup_limits(name);
  CHECK(values.memory_max == "4294967296");
  CHECK(values.pids_max == "4096");
  CHECK(values.cpu_quota == "200000");
  REQUIRE(eventually([&] { return read_text(dir.path() + "/out").find("/dev/shm") != std::string::npos; }));
  const std::string mounts = read_text(dir.path() + "/out");
  INFO(mounts);
  CHECK(mounts.find(" /tmp tmpfs rw,nosuid,nodev,relatime,size=1048576k") != std::string::npos);
  CHECK(mounts.find(" /dev/shm tmpfs rw,nosuid,nodev,relatime,size=262144k") !=
        std::string::npos);
  CHECK(mounts.find(" /sandbox tmpfs rw,nosuid,nodev,relatime,size=1048576k") != std::string::npos);
  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);

  // The operator's defaults (openshelld passes its config's): /tmp fills up at its size.
  auto r = run_process({supervisor_bin(), "run", "--policy-file", policy, "--name",
                        unique_name("fill"), "--default", "tmp_size=8M", "--default",
                        "memory_max=max", "--", "/bin/sh", "-c",
                        "head -c 64M /dev/zero > /tmp/fill; echo rc=$?; wc -c < /tmp/fill"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("rc=0") == std::string::npos);
  CHECK(r.err.find("No space left on device") != std::string::npos);
  const auto last = r.out.rfind('\n', r.out.size() - 2);
  CHECK(std::stoull(r.out.substr(last == std::string::npos ? 0 : last + 1)) <= 8U << 20);

  // A bad default is a usage error, not a sandbox without it.
  auto bad = run_process({supervisor_bin(), "run", "--policy-file", policy, "--default",
                          "memory_max=lots", "--", "/bin/true"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--default memory_max=lots") != std::string::npos);
}

TEST_CASE("kill -9 of the supervisor kills the sandbox and leaves no cgroup or mount") {
  check_kill9_cleanup(std::nullopt);
}

TEST_CASE("a delegated v1 cgroup holds the sandbox's") {
  check_delegated_cgroup(openshell::sys::CgroupVersion::kV1);
}
