#include "core/path_glob.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

using openshell::policy::glob_matches;
using openshell::policy::GlobSyntax;
using openshell::policy::PathGlob;
using openshell::policy::validate_glob;

namespace {

bool seg(const std::string& pattern, const std::string& text) {
  return glob_matches(pattern, text, PathGlob::kSegments);
}
bool flat(const std::string& pattern, const std::string& text) {
  return glob_matches(pattern, text, PathGlob::kFlat);
}

}  // namespace

TEST_CASE("segment globs: * stays inside one segment, ** crosses '/'", "[path_glob]") {
  CHECK(seg("/usr/bin/git", "/usr/bin/git"));
  CHECK_FALSE(seg("/usr/bin/git", "/usr/bin/gitk"));
  CHECK(seg("/usr/bin/*", "/usr/bin/python3"));
  CHECK_FALSE(seg("/usr/bin/*", "/usr/bin/x/python3"));
  CHECK(seg("/usr/bin/python3*", "/usr/bin/python3.11"));
  CHECK(seg("/usr/*/python3", "/usr/bin/python3"));
  CHECK_FALSE(seg("/usr/*/python3", "/usr/local/bin/python3"));
  CHECK(seg("/usr/**/python3", "/usr/local/bin/python3"));
  CHECK(seg("/sandbox/.vscode-server/**", "/sandbox/.vscode-server/bin/abc/node"));
  CHECK_FALSE(seg("/sandbox/.vscode-server/**", "/sandbox/.vscode-serverx/node"));
  CHECK(seg("/**", "/usr/bin/git"));
  CHECK(seg("/**", "/"));
  CHECK_FALSE(seg("/**", "usr/bin/git"));
  CHECK(seg("/***", "/a/b"));  // three or more stars read as **
}

TEST_CASE("segment globs: ? and classes never match '/'", "[path_glob]") {
  CHECK(seg("/usr/bin/python?", "/usr/bin/python3"));
  CHECK_FALSE(seg("/usr/bin/python?", "/usr/bin/python"));
  CHECK_FALSE(seg("/usr/bin?git", "/usr/bin/git"));
  CHECK(seg("/usr/bin/python[23]", "/usr/bin/python3"));
  CHECK_FALSE(seg("/usr/bin/python[23]", "/usr/bin/python4"));
  CHECK(seg("/usr/bin/python[0-9]", "/usr/bin/python7"));
  CHECK(seg("/usr/bin/[!x]it", "/usr/bin/git"));
  CHECK_FALSE(seg("/usr/bin/[!g]it", "/usr/bin/git"));
  CHECK_FALSE(seg("/usr/bin[!x]git", "/usr/bin/git"));
  CHECK(seg("/usr/bin/[^x]it", "/usr/bin/git"));
  CHECK(seg("/a/[]]", "/a/]"));
  CHECK(seg("/a/[!]]", "/a/x"));
  CHECK(seg("/a/[a-]", "/a/-"));
  CHECK(seg("/a/[*]", "/a/*"));
  CHECK_FALSE(seg("/a/[*]", "/a/b"));
}

TEST_CASE("flat globs: * and ** both cross '/'", "[path_glob]") {
  CHECK(flat("/repos/*", "/repos/a/b/c"));
  CHECK(flat("/repos/**", "/repos/a/b/c"));
  CHECK(flat("**", "/anything/at/all"));
  CHECK(flat("*", ""));
  CHECK(flat("/**/info/refs*", "/owner/repo.git/info/refs"));
  CHECK(flat("/**/info/refs*", "/owner/repo/info/refs?service=git-upload-pack"));
  CHECK(flat("/**/git-upload-pack", "/owner/repo.git/git-upload-pack"));
  CHECK_FALSE(flat("/**/git-upload-pack", "/owner/repo.git/git-receive-pack"));
  CHECK(flat("/v1/?", "/v1//"));
  CHECK(flat("/v1/[!a]", "/v1//"));
  CHECK_FALSE(flat("/v1/*", "/v2/x"));
  CHECK(flat("v1.*", "v1.2.3"));
  CHECK(flat("", ""));
  CHECK_FALSE(flat("", "/"));
  CHECK(flat("/a\\b", "/a\\b"));  // no escapes: a backslash is literal
}

TEST_CASE("matching stays fast on pathological patterns", "[path_glob]") {
  std::string pattern;
  for (int i = 0; i < 40; ++i) pattern += "a*";
  pattern += "b";
  const std::string text(4000, 'a');
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(flat(pattern, text));
  CHECK_FALSE(seg(pattern, text));
  CHECK(flat(pattern, text + "b"));
  std::string starry;
  for (int i = 0; i < 40; ++i) starry += "*/**/";
  CHECK_FALSE(seg(starry + "x", std::string(4000, '/')));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < std::chrono::seconds(1));
}

TEST_CASE("compiled globs report their syntax and literalness", "[path_glob]") {
  auto lit = PathGlob::compile("/usr/bin/git", GlobSyntax::kSegments);
  REQUIRE(lit.ok());
  CHECK(lit->is_literal());
  CHECK(lit->syntax() == GlobSyntax::kSegments);
  CHECK(lit->pattern() == "/usr/bin/git");
  auto wild = PathGlob::compile("/usr/bin/*", GlobSyntax::kSegments);
  REQUIRE(wild.ok());
  CHECK_FALSE(wild->is_literal());
  CHECK(wild->matches("/usr/bin/gh"));
}

TEST_CASE("validate_glob rejects malformed classes and NUL", "[path_glob]") {
  CHECK(validate_glob("/usr/bin/*").ok());
  CHECK(validate_glob("/a/[abc]/[!x]/[a-z]/[]]").ok());
  CHECK(validate_glob("").ok());
  for (const std::string& bad : {std::string("/a/[abc"), std::string("/a/["), std::string("[!"),
                                 std::string("[]"), std::string("[!]"), std::string("/a/[z-a]"),
                                 std::string("/a\0b", 4), std::string("[a\0]", 4)}) {
    INFO(bad);
    CHECK_FALSE(validate_glob(bad).ok());
    CHECK_FALSE(glob_matches(bad, bad, GlobSyntax::kFlat));
  }
  CHECK_THAT(validate_glob("/a/[abc").error().context, Catch::Contains("unclosed '['"));
  CHECK_THAT(validate_glob("/a/[z-a]").error().context, Catch::Contains("descending range"));
}
