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
  CHECK(shipped->max_sandboxes_per_user == defaults.max_sandboxes_per_user);
  CHECK(shipped->sandbox_defaults == defaults.sandbox_defaults);
  CHECK(shipped->sandbox_defaults == openshell::policy::builtin_resource_defaults());
  CHECK(shipped->user_caps == defaults.user_caps);
  CHECK(shipped->upstream_ca.empty());
  CHECK(shipped->upstream_proxy.empty());
  CHECK(shipped->default_routes.empty());
  CHECK(shipped->providers.empty());
}

TEST_CASE("config: default routes, and providers from systemd credentials (issue 16)") {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("osh-creds-" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/openai-key") << "sk-from-systemd\n";
  const std::string path = dir + "/openshelld.toml";
  std::ofstream(path) << "default_routes = [\"local\", \"claude\"]\n"
                         "[providers.oai]\ntype = \"openai\"\n"
                         "credentials = { OPENAI_API_KEY = \"openai-key\" }\n";
  ::unsetenv("CREDENTIALS_DIRECTORY");
  auto without = load_config(path, true);
  REQUIRE_FALSE(without.ok());
  CHECK(without.error().message().find("$CREDENTIALS_DIRECTORY is not set") != std::string::npos);
  ::setenv("CREDENTIALS_DIRECTORY", dir.c_str(), 1);
  auto c = load_config(path, true);
  REQUIRE(c.ok());
  CHECK(c->default_routes == std::vector<std::string>{"local", "claude"});
  REQUIRE(c->providers.size() == 1);
  CHECK(c->providers[0].name == "oai");
  CHECK(c->providers[0].credentials.at("OPENAI_API_KEY") == "sk-from-systemd");
  // A credential that is not there, a name with a slash, a bad route name: each said, no value.
  std::ofstream(path) << "default_routes = [\"Bad/Name\"]\n"
                         "[providers.oai]\ntype = \"openai\"\n"
                         "credentials = { A = \"absent\", B = \"../x\" }\n";
  auto bad = load_config(path, true);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  REQUIRE_FALSE(bad.ok());
  const std::string message = bad.error().message();
  CHECK(message.find("default_routes: route names") != std::string::npos);
  CHECK(message.find("systemd credential absent") != std::string::npos);
  CHECK(message.find("a systemd credential's name") != std::string::npos);
  CHECK(message.find("sk-from-systemd") == std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("config: upstream roots and an upstream proxy (issue 15.2)") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("osh-upstream-" + std::to_string(::getpid())))
          .string();
  const std::string pem = path + ".pem";
  std::ofstream(pem) << "-----BEGIN CERTIFICATE-----\n";
  std::ofstream(path) << "upstream_ca = [\"" + pem + "\"]\nupstream_proxy = \"http://10.0.0.1:3128\"\n";
  auto c = load_config(path, true);
  REQUIRE(c.ok());
  CHECK(c->upstream_ca == std::vector<std::string>{pem});
  CHECK(c->upstream_proxy == "http://10.0.0.1:3128");
  // A file that cannot be read, a relative path, a proxy it cannot use: each said, with where.
  std::ofstream(path) << "upstream_ca = [\"/nonexistent/ca.pem\", \"ca.pem\"]\n"
                         "upstream_proxy = \"https://proxy:3128\"\n";
  auto bad = load_config(path, true);
  REQUIRE_FALSE(bad.ok());
  const std::string message = bad.error().message();
  CHECK(message.find(":1:16: upstream_ca: cannot read /nonexistent/ca.pem") != std::string::npos);
  CHECK(message.find(":1:39: upstream_ca: must be an absolute path") != std::string::npos);
  CHECK(message.find(":2:18: upstream_proxy: upstream proxy https://proxy:3128: only "
                     "http://HOST:PORT is supported") != std::string::npos);
  std::filesystem::remove(path);
  std::filesystem::remove(pem);
}

TEST_CASE("config: sandbox defaults and the caps on non-root callers") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("osh-limits-" + std::to_string(::getpid())))
          .string();
  std::ofstream(path) << "max_sandboxes_per_user = 3\nmax_memory = \"2G\"\nmax_cpu = \"150%\"\n"
                         "max_pids = 100\n[sandbox_defaults]\nmemory_max = \"1G\"\n"
                         "pids_max = \"max\"\ntmp_size = 1048576\n";
  auto c = load_config(path, true);
  std::filesystem::remove(path);
  REQUIRE(c.ok());
  CHECK(c->max_sandboxes_per_user == 3);
  CHECK(c->user_caps.memory_max == uint64_t{2} << 30);
  CHECK(c->user_caps.cpu_max == openshell::policy::CpuMax{150});
  CHECK(c->user_caps.pids_max == 100U);
  CHECK_FALSE(c->user_caps.tmp_size.has_value());
  CHECK(c->sandbox_defaults.memory_max == uint64_t{1} << 30);
  CHECK(c->sandbox_defaults.pids_max == openshell::policy::kUnlimited);
  CHECK(c->sandbox_defaults.tmp_size == 1048576U);
  // Left out of the table: the built-in default.
  CHECK(c->sandbox_defaults.shm_size == openshell::policy::builtin_resource_defaults().shm_size);
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
  check("max_memory = \"lots\"\n", ":1:14: max_memory: malformed size");
  check("[sandbox_defaults]\ncpu_max = \"2\"\n", ":2:11: sandbox_defaults.cpu_max: malformed cpu_max");
  check("[sandbox_defaults]\nmem = \"1G\"\n", "sandbox_defaults.mem: unknown resource");
  // Every mistake at once, a line each.
  check("stat_dir = \"/x\"\nlog_dir = 7\nmax_sandboxes = 0\n",
        ":1:1: unknown key 'stat_dir'\n" + path + ":2:11: log_dir: must be a string\n" + path +
            ":3:17: max_sandboxes: a number in 1..4096");
  std::filesystem::remove(path);
  CHECK_FALSE(load_config("/nonexistent/openshelld.toml", true).ok());
  CHECK(load_config("/nonexistent/openshelld.toml", false).ok());
}
