#include "openshelld/outcome.hpp"

#include <catch2/catch.hpp>
#include <string>

using openshell::daemon::outcome_from_events;

namespace {

const std::string kLaunch = R"({"class_uid":1007,"activity_name":"Launch","message":"x"})";
const std::string kExit3 =
    R"({"class_uid":1007,"activity_name":"Terminate","exit_code":3,"status_detail":""})";
const std::string kKilled =
    R"({"class_uid":1007,"activity_name":"Terminate","exit_code":137,"status_detail":"killed by the OOM killer"})";
const std::string kNotFound =
    R"({"class_uid":5019,"activity_name":"Failed","stage":"exec","errno":2,"message":"exec /nope: No such file or directory"})";
const std::string kNoExec =
    R"({"class_uid":5019,"activity_name":"Failed","stage":"exec","errno":13,"message":"exec /etc/passwd: Permission denied"})";
const std::string kPlan =
    R"({"class_uid":5019,"activity_name":"Failed","stage":"plan","errno":13,"message":"policy path /root/x: ..."})";
const std::string kConnect = R"({"class_uid":4001,"activity_name":"Open"})";
const std::string kExecEnd =
    R"({"class_uid":1007,"activity_name":"Terminate","exit_code":9,"process":{"xattributes":{"session":"exec"}}})";

}  // namespace

// Issue 13.4: what a create whose command ends at once, and a later end, report.
TEST_CASE("outcome: the last ending in a sandbox's events") {
  auto exit3 = outcome_from_events(kLaunch + "\n" + kExit3 + "\n" + kConnect + "\n");
  REQUIRE(exit3);
  CHECK(exit3->exit_status == 3);
  CHECK(exit3->reason == "the command exited with status 3");

  auto killed = outcome_from_events(kLaunch + "\n" + kKilled + "\n");
  REQUIRE(killed);
  CHECK(killed->exit_status == 137);
  CHECK(killed->reason == "the command exited with status 137 (killed by the OOM killer)");

  auto missing = outcome_from_events(kNotFound + "\n");
  REQUIRE(missing);
  CHECK(missing->exit_status == 127);
  CHECK(missing->reason == "command not found: exec /nope: No such file or directory");

  auto denied = outcome_from_events(kNoExec);  // no newline at the end
  REQUIRE(denied);
  CHECK(denied->exit_status == 126);
  CHECK(denied->reason.rfind("command cannot be executed: ", 0) == 0);

  auto unbuilt = outcome_from_events(kPlan + "\n");
  REQUIRE(unbuilt);
  CHECK_FALSE(unbuilt->exit_status);
  CHECK(unbuilt->reason == "the sandbox could not be built (plan): policy path /root/x: ...");

  // Started again since its last end: no ending to report. A torn last line is passed over.
  CHECK_FALSE(outcome_from_events(kExit3 + "\n" + kLaunch + "\n"));
  auto torn = outcome_from_events(kLaunch + "\n" + kExit3 + "\n{\"class_uid\":10");
  REQUIRE(torn);
  CHECK(torn->exit_status == 3);
  CHECK_FALSE(outcome_from_events(""));
  // An exec session's end is not the main process's.
  CHECK_FALSE(outcome_from_events(kLaunch + "\n" + kExecEnd + "\n"));
  auto before = outcome_from_events(kExit3 + "\n" + kExecEnd + "\n");
  REQUIRE(before);
  CHECK(before->exit_status == 3);
  CHECK_FALSE(outcome_from_events(kConnect + "\nnot json\n"));
}
