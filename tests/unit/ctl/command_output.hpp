// What the built binaries print, for the tests that hold the man pages and the completions to
// them (man_page_test, completion_test).
#pragma once

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <regex>
#include <set>
#include <string>

namespace openshell::testing {

// The standard output and error of a shell command line, which must exit 0.
inline std::string output_of(const std::string& command_line) {
  std::string out;
  FILE* p = ::popen((command_line + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  REQUIRE(WEXITSTATUS(::pclose(p)) == 0);
  return out;
}

// Every "--name" in a help text (without the dashes).
inline std::set<std::string> long_options(const std::string& text) {
  std::set<std::string> options;
  static const std::regex option(R"(--([a-z][a-z-]*))");
  for (std::sregex_iterator it(text.begin(), text.end(), option), end; it != end; ++it)
    options.insert((*it)[1]);
  return options;
}

}  // namespace openshell::testing
