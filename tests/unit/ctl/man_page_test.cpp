// docs/openshellctl.1 stays true: every command and every long option the built openshellctl
// offers is described there, and so are the exit statuses.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string help(const std::string& args) {
  std::string out;
  FILE* p = ::popen((std::string(OPENSHELL_CTL_BIN) + " " + args + " --help 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  REQUIRE(WEXITSTATUS(::pclose(p)) == 0);
  return out;
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

std::set<std::string> long_options(const std::string& text) {
  std::set<std::string> options;
  static const std::regex option(R"(--([a-z][a-z-]*))");
  for (std::sregex_iterator it(text.begin(), text.end(), option), end; it != end; ++it)
    if ((*it)[1] != "help") options.insert((*it)[1]);
  return options;
}

}  // namespace

TEST_CASE("the man page describes every command, option and exit status") {
  std::ifstream in(std::string(OPENSHELL_SOURCE_DIR) + "/docs/openshellctl.1");
  REQUIRE(in);
  std::stringstream buf;
  buf << in.rdbuf();
  // roff writes - as \-; compare in plain text.
  const std::string page = std::regex_replace(buf.str(), std::regex(R"(\\-)"), "-");

  const auto top = subcommands(help(""));
  REQUIRE(top.size() >= 9);
  size_t checked = 0;
  for (const auto& command : top) {
    const std::string text = help(command);
    auto children = subcommands(text);
    if (children.empty()) children.insert("");
    for (const auto& child : children) {
      const std::string full = child.empty() ? command : command + " " + child;
      INFO(full);
      const bool described = page.find(".B " + full) != std::string::npos ||
                             page.find(".BI \"" + full) != std::string::npos;
      CHECK(described);
      for (const auto& option : long_options(help(full))) {
        INFO("--" + option);
        CHECK(page.find("--" + option) != std::string::npos);
      }
      ++checked;
    }
  }
  CHECK(checked >= 20);
  for (const char* status : {".B 0", ".B 1", ".B 2", "128+"})
    CHECK(page.find(status) != std::string::npos);
}
