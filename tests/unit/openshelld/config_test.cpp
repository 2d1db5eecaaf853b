#include "openshelld/config.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

using namespace openshell::daemon;

TEST_CASE("config: the shipped openshelld.toml is valid and says the defaults") {
  auto shipped = load_config(std::string(OPENSHELL_SOURCE_DIR) + "/units/openshelld.toml", true);
  REQUIRE(shipped.ok());
  const Config defaults;
  CHECK(shipped->state_dir == defaults.state_dir);
  CHECK(shipped->policy_dir == defaults.policy_dir);
  CHECK(shipped->runtime_dir == defaults.runtime_dir);
  CHECK(shipped->log_dir == defaults.log_dir);
  CHECK(shipped->supervisor == defaults.supervisor);
  CHECK(shipped->default_policy == defaults.default_policy);
  CHECK(shipped->max_sandboxes == defaults.max_sandboxes);
  CHECK(shipped->removed_logs_kept == defaults.removed_logs_kept);
  CHECK(shipped->driver == defaults.driver);
}

TEST_CASE("config: mistakes are reported with file:line:col") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("osh-config-" + std::to_string(::getpid())))
          .string();
  auto check = [&](const std::string& text, const std::string& expect) {
    std::ofstream(path) << text;
    auto c = load_config(path, true);
    REQUIRE_FALSE(c.ok());
    INFO(c.error().message());
    CHECK(c.error().message().find(expect) != std::string::npos);
  };
  check("stat_dir = \"/x\"\n", ":1:1: unknown key 'stat_dir'");
  check("state_dir = \"relative\"\n", "state_dir: must be an absolute path");
  check("\n\nmax_sandboxes = 0\n", ":3:");
  check("log_dir = 7\n", "log_dir: must be a string");
  check("state_dir = \n", ":1:");
  check("driver = \"docker\"\n", ":1:10: driver: one of auto, systemd, direct");
  check("removed_logs_kept = -1\n", ":1:21: removed_logs_kept: a number in 0..100000");
  std::filesystem::remove(path);
  CHECK_FALSE(load_config("/nonexistent/openshelld.toml", true).ok());
  CHECK(load_config("/nonexistent/openshelld.toml", false).ok());
}
