// Start to finish: exit statuses, signals, events, Landlock compatibility modes, the CLI.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "sys/landlock.hpp"
#include "tests/support/events.hpp"
#include "tests/support/harness.hpp"

using namespace openshell::testing;

namespace {

std::vector<std::string> run_argv(const std::string& policy, const std::string& name,
                                  const std::vector<std::string>& cmd,
                                  const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {supervisor_bin(), "run",    "--policy-file",
                                   policy,           "--name", name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.emplace_back("--");
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  return argv;
}

}  // namespace

TEST_CASE("the supervisor exits with the agent's status, 128+N on a signal") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  CHECK(run_process(run_argv(policy, unique_name("rc"), {"/bin/sh", "-c", "exit 7"})).exit_code ==
        7);
  CHECK(run_process(run_argv(policy, unique_name("rc"), {"/bin/true"})).exit_code == 0);
  CHECK(run_process(run_argv(policy, unique_name("rc"), {"/bin/sh", "-c", "kill -TERM $$"}))
            .exit_code == 143);
  CHECK(run_process(run_argv(policy, unique_name("rc"), {"/bin/sh", "-c", "kill -KILL $$"}))
            .exit_code == 137);
  auto missing = run_process(run_argv(policy, unique_name("rc"), {"/nonexistent/cmd"}));
  CHECK(missing.exit_code == 127);
  CHECK(missing.err.find("/nonexistent/cmd") != std::string::npos);
  CHECK(run_process(run_argv(policy, unique_name("rc"), {"true"})).exit_code == 0);  // PATH lookup
}

TEST_CASE("signals sent to the supervisor reach the agent") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string events = dir.path() + "/events.jsonl";
  const std::string output = dir.path() + "/out.txt";
  // The agent traps USR1; a bounded loop keeps the test from hanging if forwarding broke.
  pid_t pid = spawn_process(run_argv(policy, unique_name("sig"),
                                     {"/bin/sh", "-c",
                                      "trap 'echo got-usr1; exit 3' USR1; echo ready; i=0; while [ "
                                      "$i -lt 600 ]; do sleep 0.1; "
                                      "i=$((i+1)); done; exit 9"},
                                     {"--events", events}),
                            output);
  // Only once the trap is set: a signal before that would kill the shell, not test forwarding.
  REQUIRE(eventually([&] { return read_text(output).find("ready") != std::string::npos; }));
  REQUIRE(kill(pid, SIGUSR1) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 3);
  CHECK(read_text(output).find("got-usr1") != std::string::npos);
}

TEST_CASE("events record policy load, agent launch and exit") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string events_file = dir.path() + "/events.jsonl";
  const std::string name = unique_name("ev");
  auto r =
      run_process(run_argv(policy, name, {"/bin/sh", "-c", "exit 5"}, {"--events", events_file}));
  REQUIRE(r.exit_code == 5);
  auto events = read_events(events_file);

  auto loaded = find_event(events, 5019, "Loaded");
  REQUIRE(loaded != nullptr);
  CHECK(loaded["metadata"]["version"] == "1.7.0");
  CHECK(loaded["unmapped"]["sandbox"] == name);

  auto enforced = find_event(events, 5019, "Enforced");
  REQUIRE(enforced != nullptr);
  CHECK(enforced["enforcement"]["landlock_abi"] == openshell::sys::landlock_abi());
  CHECK(enforced["enforcement"]["seccomp"] == "baseline");
  CHECK(enforced["enforcement"]["pids_max"].get<int>() > 0);

  auto launch = find_event(events, 1007, "Launch");
  REQUIRE(launch != nullptr);
  CHECK(launch["type_uid"] == 100701);
  CHECK(launch["process"]["pid"].get<int>() > 1);
  CHECK(launch["process"]["file"]["path"] == "/bin/sh");
  CHECK(launch["process"]["user"]["uid"] == "1000");

  auto exit = find_event(events, 1007, "Terminate");
  REQUIRE(exit != nullptr);
  CHECK(exit["exit_code"] == 5);
  CHECK(exit["status"] == "Failure");
  // argv is never recorded: it may hold secrets.
  CHECK(read_text(events_file).find("exit 5") == std::string::npos);
}

TEST_CASE("a setup failure is reported with its stage and errno") {
  TempDir dir;
  auto policy = dir.write("p.toml", test_policy());
  const std::string events_file = dir.path() + "/events.jsonl";
  auto r = run_process(
      run_argv(policy, unique_name("fail"), {"/etc/passwd"}, {"--events", events_file}));
  CHECK(r.exit_code == 126);  // found, not executable
  auto failed = find_event(read_events(events_file), 5019, "Failed");
  REQUIRE(failed != nullptr);
  CHECK(failed["stage"] == "exec");
  CHECK(failed["errno"] == EACCES);
}

TEST_CASE("landlock hard_requirement refuses a missing path; best_effort skips it and says so") {
  TempDir dir;
  const std::string missing = "/nonexistent-openshell-path";
  auto hard = dir.write(
      "hard.toml",
      test_policy(", \"" + missing + "\"", "[landlock]\ncompatibility = \"hard_requirement\"\n"));
  auto r = run_process(run_argv(hard, unique_name("ll"), {"/bin/true"}));
  CHECK(r.exit_code == 125);
  CHECK(r.err.find(missing) != std::string::npos);
  CHECK(r.err.find("hard_requirement") != std::string::npos);

  auto soft = dir.write("soft.toml", test_policy(", \"" + missing + "\"",
                                                 "[landlock]\ncompatibility = \"best_effort\"\n"));
  const std::string events_file = dir.path() + "/events.jsonl";
  auto s = run_process(run_argv(soft, unique_name("ll"), {"/bin/true"}, {"--events", events_file}));
  CHECK(s.exit_code == 0);
  CHECK(s.err.find(missing) != std::string::npos);
  auto skipped = find_event(read_events(events_file), 5019, "Skipped");
  REQUIRE(skipped != nullptr);
  CHECK(skipped["file"]["path"] == missing);
  CHECK(skipped["severity"] == "Medium");
}

TEST_CASE("an invalid policy is refused with file:line:col diagnostics") {
  TempDir dir;
  auto bad = dir.write("bad.toml", "version = 1\n[filesystem_policy]\nread_write = [\"/\"]\n");
  auto r = run_process(run_argv(bad, unique_name("bad"), {"/bin/true"}));
  CHECK(r.exit_code == 125);
  CHECK(r.err.find(bad + ":3:") != std::string::npos);

  auto check = run_process({supervisor_bin(), "check-policy", bad});
  CHECK(check.exit_code == 1);
  CHECK(check.err.find(bad + ":3:") != std::string::npos);
  CHECK(check.out.empty());
}

TEST_CASE("check-policy accepts every shipped example") {
  // github-readonly.toml has L7 rules: accepted since the proxy enforces them (issue 15).
  for (const char* name : {"default.toml", "claude-code.toml", "pypi.toml", "python-dev.toml",
                           "github-readonly.toml"}) {
    const std::string file = policy_examples_dir() + "/" + name;
    auto r = run_process({supervisor_bin(), "check-policy", file});
    INFO(file << "\n" << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == file + ": ok\n");
  }
}

TEST_CASE("usage errors exit 2 with one line") {
  auto r = run_process({supervisor_bin(), "run", "--bogus"});
  CHECK(r.exit_code == 2);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  auto name = run_process({supervisor_bin(), "run", "--name", "../x", "--", "/bin/true"});
  CHECK(name.exit_code == 2);
  CHECK(name.err.find("invalid sandbox name") != std::string::npos);
}

TEST_CASE("the default policy runs a shell with no network") {
  auto r = run_process({supervisor_bin(), "run", "--policy-file",
                        policy_examples_dir() + "/default.toml", "--name", unique_name("def"), "--",
                        "/bin/sh", "-c", "id -u && cat /etc/os-release > /dev/null && echo ok"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "1000\nok\n");
}
