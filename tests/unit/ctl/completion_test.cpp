// openshellctl __complete, which the bash, zsh and fish completions (completions/) ask: commands
// and options from the command table, value kinds from the options' type names. Names from the
// daemon are checked with one in daemon_test.
#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/ctl/command_output.hpp"

namespace {

std::string run(const std::string& args) {
  return openshell::testing::output_of(std::string(OPENSHELL_CTL_BIN) + " " + args);
}

// The candidates for the last of `words` (quoted for the shell by the caller).
std::set<std::string> complete(const std::string& words) {
  std::istringstream in(run("__complete " + words));
  std::set<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.insert(line);
  return lines;
}

}  // namespace

TEST_CASE("__complete: commands, then their subcommands, never itself") {
  const auto top = complete("''");
  for (const char* c : {"status", "sandbox", "exec", "connect", "upload", "download", "policy",
                        "run", "logs", "provider", "inference"})
    CHECK(top.count(c) == 1);
  CHECK(top.count("__complete") == 0);
  CHECK(complete("sandbox ''") ==
        std::set<std::string>{"create", "list", "get", "start", "stop", "delete"});
  CHECK(complete("inference ''") == std::set<std::string>{"route"});
  CHECK(complete("--json inference route ''") ==
        std::set<std::string>{"set", "list", "get", "delete"});
}

TEST_CASE("__complete: every option --help lists, its own and the global ones") {
  for (const char* command : {"sandbox create", "exec", "run", "logs", "provider create",
                              "inference route set", "policy get", "upload"}) {
    INFO(command);
    const auto offered = complete(std::string(command) + " x --");
    for (const auto& option :
         openshell::testing::long_options(run(std::string(command) + " --help"))) {
      INFO(option);
      CHECK(offered.count("--" + option) == 1);
    }
    CHECK(offered.count("--bus") == 1);
    CHECK(offered.count("--json") == 1);
  }
}

TEST_CASE("__complete: values by kind; nothing after --") {
  CHECK(complete("provider create p --type ''") ==
        std::set<std::string>{"generic", "github", "openai", "anthropic", "nvidia"});
  CHECK(complete("inference route set r --locality ''") ==
        std::set<std::string>{"local", "remote"});
  CHECK(complete("logs s --class ''").count("inference") == 1);
  CHECK(complete("upload s ''") == std::set<std::string>{":files"});
  CHECK(complete("download s remote ''") == std::set<std::string>{":files"});
  CHECK(complete("sandbox create s --policy-file ''") == std::set<std::string>{":files"});
  CHECK(complete("run --workdir ''") == std::set<std::string>{":dirs"});
  // After a flag, the next word is not its value.
  CHECK(complete("--json sandbox ''").count("create") == 1);
  CHECK(complete("exec s -- l").empty());
  CHECK(complete("sandbox list ''").empty());
  // Without a daemon, no names and no error.
  CHECK(complete("--bus unix:path=/nonexistent sandbox stop ''").empty());
}
