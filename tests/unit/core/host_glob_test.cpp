#include "core/host_glob.hpp"

#include <catch2/catch.hpp>
#include <string>

using openshell::policy::HostPattern;
using openshell::policy::normalize_host;

namespace {

HostPattern pattern(const std::string& s) {
  auto r = HostPattern::parse(s);
  INFO(s << ": " << (r.ok() ? "" : r.error().context));
  REQUIRE(r.ok());
  return *r;
}

std::string rejection(const std::string& s) {
  auto r = HostPattern::parse(s);
  INFO(s);
  REQUIRE_FALSE(r.ok());
  return r.error().context;
}

}  // namespace

TEST_CASE("exact hosts compare case-insensitively, one trailing dot ignored", "[host_glob]") {
  const HostPattern p = pattern("API.GitHub.com.");
  CHECK(p.is_exact());
  CHECK(p.text() == "api.github.com");
  CHECK(p.matches("api.github.com"));
  CHECK(p.matches("API.GITHUB.COM"));
  CHECK(p.matches("api.github.com."));
  CHECK_FALSE(p.matches("api.github.com.."));
  CHECK_FALSE(p.matches("github.com"));
  CHECK_FALSE(p.matches("xapi.github.com"));
  CHECK_FALSE(p.matches(""));
  CHECK(pattern("10.0.0.1").matches("10.0.0.1"));
  CHECK(pattern("_acme-challenge.example.com").is_exact());
}

TEST_CASE("a whole-label * matches exactly one label", "[host_glob]") {
  const HostPattern p = pattern("*.example.test");
  CHECK_FALSE(p.is_exact());
  CHECK(p.matches("a.example.test"));
  CHECK(p.matches("A-1.Example.Test."));
  CHECK_FALSE(p.matches("example.test"));
  CHECK_FALSE(p.matches("a.b.example.test"));
  CHECK_FALSE(p.matches(".example.test"));
  CHECK_FALSE(p.matches("a.example.test.evil"));

  const HostPattern middle = pattern("api.*.example.test");
  CHECK(middle.matches("api.eu.example.test"));
  CHECK_FALSE(middle.matches("api.example.test"));
  CHECK_FALSE(middle.matches("api.a.b.example.test"));
  CHECK_FALSE(middle.matches("www.eu.example.test"));
}

TEST_CASE("** as the first label matches one or more labels", "[host_glob]") {
  const HostPattern p = pattern("**.example.test");
  CHECK(p.matches("a.example.test"));
  CHECK(p.matches("a.b.example.test"));
  CHECK(p.matches("a.b.c.d.example.test"));
  CHECK_FALSE(p.matches("example.test"));
  CHECK_FALSE(p.matches("a.example.test2"));
  CHECK_FALSE(p.matches("aexample.test"));
}

TEST_CASE("* inside the first label matches a fragment", "[host_glob]") {
  const HostPattern p = pattern("*-x.googleapis.com");
  CHECK(p.matches("us-central1-x.googleapis.com"));
  CHECK(p.matches("-x.googleapis.com"));
  CHECK_FALSE(p.matches("us-central1-y.googleapis.com"));
  CHECK_FALSE(p.matches("a.b-x.googleapis.com"));
  CHECK_FALSE(p.matches("x.googleapis.com"));

  const HostPattern two = pattern("a*b*c.example.com");
  CHECK(two.matches("abc.example.com"));
  CHECK(two.matches("a-1-b-2-c.example.com"));
  CHECK_FALSE(two.matches("a-1-c.example.com"));
}

TEST_CASE("candidates with NUL, '*', bad characters or empty labels never match", "[host_glob]") {
  const HostPattern star = pattern("*.example.test");
  const HostPattern any = pattern("**.example.test");
  for (const std::string& bad : {std::string("a\0.example.test", 16), std::string("*.example.test"),
                                 std::string("**.example.test"), std::string("a..example.test"),
                                 std::string("a.example..test"), std::string("a/b.example.test"),
                                 std::string("a:443.example.test"), std::string("a b.example.test"),
                                 std::string("a.example.test.."), std::string(".a.example.test"),
                                 std::string(300, 'a') + ".example.test"}) {
    INFO(bad);
    CHECK_FALSE(star.matches(bad));
    CHECK_FALSE(any.matches(bad));
  }
  CHECK_FALSE(pattern("example.test").matches(std::string("example.test\0", 13)));
}

TEST_CASE("host patterns that are too broad or malformed are rejected", "[host_glob]") {
  CHECK_THAT(rejection("*"), Catch::Contains("two fixed labels"));
  CHECK_THAT(rejection("**"), Catch::Contains("two fixed labels"));
  CHECK_THAT(rejection("*.com"), Catch::Contains("two fixed labels"));
  CHECK_THAT(rejection("**.com"), Catch::Contains("two fixed labels"));
  CHECK_THAT(rejection("*-x.com"), Catch::Contains("two fixed labels"));
  CHECK_THAT(rejection("a.*.com"), Catch::Contains("two fixed labels"));
  CHECK_THAT(rejection("example.*"), Catch::Contains("two fixed labels"));
  CHECK_THAT(rejection("a.b*c.com"), Catch::Contains("partial wildcard"));
  CHECK_THAT(rejection("a.*b.example.com"), Catch::Contains("partial wildcard"));
  CHECK_THAT(rejection("a.**.example.com"), Catch::Contains("'**' is only allowed"));
  CHECK_THAT(rejection("a**.example.com"), Catch::Contains("'**' must be a whole label"));
  CHECK_THAT(rejection("***.example.com"), Catch::Contains("'**' must be a whole label"));
  CHECK_THAT(rejection(""), Catch::Contains("empty"));
  CHECK_THAT(rejection("."), Catch::Contains("empty"));
  CHECK_THAT(rejection("a..com"), Catch::Contains("empty label"));
  CHECK_THAT(rejection(".example.com"), Catch::Contains("empty label"));
  CHECK_THAT(rejection("example.com.."), Catch::Contains("empty label"));
  CHECK_THAT(rejection("exa mple.com"), Catch::Contains("not allowed"));
  CHECK_THAT(rejection("example.com:443"), Catch::Contains("':'"));
  CHECK_THAT(rejection("::1"), Catch::Contains("not allowed"));
  CHECK_THAT(rejection(std::string("a\0b.com", 7)), Catch::Contains("byte 0x00"));
  CHECK_THAT(rejection("ex\xc3\xa4mple.com"), Catch::Contains("not allowed"));
  CHECK_THAT(rejection(std::string(64, 'a') + ".com"), Catch::Contains("longer than 63"));
  CHECK(HostPattern::parse(std::string(63, 'a') + ".com").ok());

  std::string long_host;
  while (long_host.size() < 260) long_host += "abcdefghi.";
  long_host += "com";
  CHECK_THAT(rejection(long_host), Catch::Contains("longer than 253"));
}

TEST_CASE("normalize_host", "[host_glob]") {
  CHECK(normalize_host("Example.COM.") == "example.com");
  CHECK(normalize_host("example.com..").empty());
  CHECK(normalize_host("").empty());
  CHECK(normalize_host(".").empty());
  CHECK(normalize_host("a*b.com").empty());
}
