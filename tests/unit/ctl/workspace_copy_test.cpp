#include "ctl/workspace_copy.hpp"

#include <catch2/catch.hpp>

using namespace openshell::ctl;

TEST_CASE("workspace paths: relative to /sandbox, never above it") {
  CHECK(workspace_relative("a/b").value() == "a/b");
  CHECK(workspace_relative("/sandbox/a//./b/").value() == "a/b");
  CHECK(workspace_relative("/sandbox").value().empty());
  CHECK(workspace_relative("").value().empty());
  CHECK_FALSE(workspace_relative("/etc/passwd").ok());
  CHECK_FALSE(workspace_relative("/sandboxes/x").ok());
  CHECK_FALSE(workspace_relative("a/../../b").ok());
  CHECK_FALSE(workspace_relative("..").ok());
}

TEST_CASE("a symlink is copied only when it stays inside") {
  CHECK(link_stays_inside("a.txt", 0));
  CHECK(link_stays_inside("./sub/../a.txt", 0));
  CHECK(link_stays_inside("../x", 1));
  CHECK(link_stays_inside("../../x", 2));
  CHECK_FALSE(link_stays_inside("../x", 0));
  CHECK_FALSE(link_stays_inside("sub/../../x", 0));
  CHECK_FALSE(link_stays_inside("/etc/passwd", 3));
  CHECK_FALSE(link_stays_inside("", 0));
}
