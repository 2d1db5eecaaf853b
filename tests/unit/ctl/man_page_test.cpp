// The man pages (docs/man/*.scd) stay true: every command and long option of the built
// openshellctl, openshelld and openshell-supervisor is described in its page, and so are the exit
// statuses; every key of the shipped openshelld.toml in openshelld.toml(5); every key of the
// policy language in openshell-policy(5), whose examples are valid policies.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/policy.hpp"
#include "tests/unit/ctl/command_output.hpp"

namespace {

using openshell::testing::long_options;

std::string help(const std::string& binary, const std::string& args) {
  return openshell::testing::output_of(binary + " " + args + " --help");
}

std::string page(const std::string& name) {
  std::ifstream in(std::string(OPENSHELL_SOURCE_DIR) + "/docs/man/" + name + ".scd");
  REQUIRE(in);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The names under "Subcommands:" in a help text.
std::set<std::string> subcommands(const std::string& text) {
  std::set<std::string> names;
  const auto at = text.find("Subcommands:");
  if (at == std::string::npos) return names;
  std::istringstream in(text.substr(at));
  std::string line;
  std::getline(in, line);
  static const std::regex entry(R"(^  ([a-z-]+)[,\s])");  // "list, ls": an alias follows
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, entry)) names.insert(m[1]);
  }
  return names;
}

// Every command path that runs something ("status", "sandbox create", "inference route set").
void leaf_commands(const std::string& path, std::vector<std::string>* out) {
  const auto children = subcommands(help(OPENSHELL_CTL_BIN, path));
  if (children.empty()) out->push_back(path);
  for (const auto& child : children) leaf_commands(path.empty() ? child : path + " " + child, out);
}

}  // namespace

TEST_CASE("openshellctl(1) describes every command, option and exit status") {
  const std::string text = page("openshellctl.1");
  std::vector<std::string> commands;
  leaf_commands("", &commands);
  size_t checked = 0;
  for (const auto& full : commands) {
    INFO(full);
    // "*sandbox create* _NAME_ ...", "*policy list*"; "*inference route get* _R_" in a list.
    CHECK(text.find("*" + full + "*") != std::string::npos);
    for (const auto& option : long_options(help(OPENSHELL_CTL_BIN, full))) {
      INFO("--" + option);
      CHECK(text.find("--" + option) != std::string::npos);
    }
    ++checked;
  }
  CHECK(checked >= 30);
  for (const char* status : {"*0*", "*1*", "*2*", "*3*", "*126*", "*127*", "128+"})
    CHECK(text.find(status) != std::string::npos);
}

TEST_CASE("openshelld(8) and openshell-supervisor(8) describe every option") {
  const std::string daemon = page("openshelld.8");
  for (const auto& option : long_options(help(OPENSHELL_DAEMON_BIN, ""))) {
    INFO("openshelld --" + option);
    CHECK(daemon.find("*--" + option + "*") != std::string::npos);
  }
  const std::string supervisor = page("openshell-supervisor.8");
  const auto commands = subcommands(help(OPENSHELL_SUPERVISOR_BIN, ""));
  CHECK(commands == std::set<std::string>{"run", "check-policy"});
  for (const auto& command : commands) {
    CHECK(supervisor.find("*" + command + "*") != std::string::npos);
    for (const auto& option : long_options(help(OPENSHELL_SUPERVISOR_BIN, command))) {
      INFO("openshell-supervisor " + command + " --" + option);
      CHECK(supervisor.find("*--" + option + "*") != std::string::npos);
    }
  }
}

TEST_CASE("openshelld.toml(5) describes every key of the shipped openshelld.toml") {
  const std::string text = page("openshelld.toml.5");
  std::ifstream in(std::string(OPENSHELL_SOURCE_DIR) + "/units/openshelld.toml");
  REQUIRE(in);
  // "key = ...", "# key = ..." (an example), "[table]", "# [table.NAME]".
  static const std::regex key(R"(^(?:# )?([a-z_]+) = )"), table(R"(^(?:# )?\[([a-z_]+)[.\]])");
  size_t keys = 0;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, key) || std::regex_search(line, m, table)) {
      INFO(line);
      CHECK((text.find("*" + m[1].str()) != std::string::npos ||
             text.find("*[" + m[1].str()) != std::string::npos));
      ++keys;
    }
  }
  CHECK(keys >= 20);
}

TEST_CASE("openshell-policy(5) describes every key, and its examples are valid policies") {
  const std::string text = page("openshell-policy.5");
  // Every key the parser takes (core/policy.cpp).
  std::istringstream keys(
      "version filesystem_policy read_only read_write include_workdir landlock compatibility "
      "process run_as_user run_as_group resources memory_max cpu_max pids_max tmp_size "
      "shm_size network_policies binaries endpoints host port ports protocol tls access rules "
      "allow method path query any deny_rules enforcement allow_encoded_slash allowed_ips "
      "credential_binding request_body_credential_rewrite inference routes privacy ");
  for (std::string k; keys >> k;) {
    INFO(k);
    // "*key* = ...", "*key =", "*[table]*", "*[network_policies.*_RULE_*.endpoints]]*".
    CHECK(std::regex_search(text, std::regex(std::string(R"([*.[])") + k + R"([*\] .])")));
  }
  // Each ``` block, with version = 1 where it leaves it out.
  static const std::regex block("```\\n([^`]*)```");
  size_t examples = 0;
  for (std::sregex_iterator it(text.begin(), text.end(), block), end; it != end; ++it) {
    std::string example = (*it)[1];
    if (example.find("version = 1") == std::string::npos) example = "version = 1\n" + example;
    const auto parsed = openshell::policy::parse_policy_string(example, "example");
    INFO(example);
    for (const auto& d : parsed.diagnostics) INFO(d.to_string());
    CHECK(parsed.ok());
    ++examples;
  }
  CHECK(examples >= 5);
}
