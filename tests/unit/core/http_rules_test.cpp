#include "core/http_rules.hpp"

#include <catch2/catch.hpp>

using namespace openshell;
using namespace openshell::l7;

namespace {

// The first endpoint of rule "r" in a policy made of `endpoint` (TOML lines of one endpoint).
policy::Endpoint endpoint(const std::string& lines) {
  const std::string text =
      "version = 1\n[network_policies.r]\n[[network_policies.r.endpoints]]\n"
      "host = \"api.example.com\"\nport = 443\nprotocol = \"rest\"\n" +
      lines + "\n";
  auto parsed = policy::parse_policy_string(text, "t.toml", policy::ParseOptions{.l7 = true});
  INFO(text);
  for (const auto& d : parsed.diagnostics) INFO(d.to_string());
  REQUIRE(parsed.ok());
  return parsed.policy->network_policies.at("r").endpoints.at(0);
}

Decision decide(const policy::Endpoint& ep, const std::string& method, const std::string& target) {
  auto t = canonicalize(target, ep.allow_encoded_slash);
  REQUIRE(t.ok());
  auto q = parse_query(t->query);
  REQUIRE(q.ok());
  return evaluate(ep, Request{method, t->path, *q});
}

std::string canon(std::string_view target, bool allow_slash = false) {
  auto t = canonicalize(target, allow_slash);
  return t ? t->path + (t->query.empty() ? "" : "?" + t->query) : "!" + t.error().message();
}

}  // namespace

TEST_CASE("l7: paths are canonical before any rule sees them") {
  CHECK(canon("/a/b") == "/a/b");
  CHECK(canon("/a/../secret") == "/secret");
  CHECK(canon("/../../etc/passwd") == "/etc/passwd");  // never above the root
  CHECK(canon("//a///b/./c") == "/a/b/c");
  CHECK(canon("/a/b/") == "/a/b/");
  CHECK(canon("/a/b/..") == "/a/");
  CHECK(canon("/%61%7Ei") == "/a~i");                   // unreserved escapes decoded
  CHECK(canon("/a%2e%2e/x") == "/a../x");               // "%2e%2e" inside a segment is a name
  CHECK(canon("/%2e%2e/secret") == "/secret");          // alone it is a dot segment
  CHECK(canon("/a%20b%3f") == "/a%20b%3F");             // others kept, hex upper-cased
  CHECK(canon("/repos;jsessionid=1/x") == "/repos/x");  // ;params stripped
  CHECK(canon("/a?x=1&y") == "/a?x=1&y");
  CHECK(canon("/a%2Fb").starts_with("!"));   // an escaped slash is refused...
  CHECK(canon("/a%2fb", true) == "/a%2Fb");  // ...unless allowed, and then kept
  for (const char* bad :
       {"", "a", "http://x/a", "/a#frag", "/a b", "/%zz", "/%4", "/%00", "/caf\xc3\xa9", "/a\x01"})
    CHECK(canon(bad).starts_with("!"));
  CHECK(canon("/" + std::string(kMaxTargetBytes, 'a')).starts_with("!"));
}

TEST_CASE("l7: query parameters are decoded, bounded and refused when malformed") {
  auto q = parse_query("a=1&b&c=&a=x%20y&d=%2B+&&");
  REQUIRE(q.ok());
  CHECK(*q == QueryParams{{"a", "1"}, {"b", ""}, {"c", ""}, {"a", "x y"}, {"d", "++"}});
  CHECK(parse_query("")->empty());
  CHECK_FALSE(parse_query("a=%G1").ok());
  CHECK_FALSE(parse_query("a=%00").ok());
  std::string many;
  for (size_t i = 0; i <= kMaxQueryParams; ++i) many += "k" + std::to_string(i) + "=v&";
  CHECK_FALSE(parse_query(many).ok());
}

TEST_CASE("l7: access presets") {
  const auto ro = endpoint("access = \"read-only\"");
  CHECK(decide(ro, "GET", "/x").allowed);
  CHECK(decide(ro, "head", "/x").allowed);
  CHECK(decide(ro, "OPTIONS", "/x").allowed);
  const auto post = decide(ro, "POST", "/x");
  CHECK_FALSE(post.allowed);
  CHECK(post.reason == "access read-only does not allow POST");
  CHECK(decide(ro, "GET", "/x").rule == "access read-only");
  const auto rw = endpoint("access = \"read-write\"");
  for (const char* m : {"GET", "POST", "PUT", "PATCH"}) CHECK(decide(rw, m, "/x").allowed);
  CHECK_FALSE(decide(rw, "DELETE", "/x").allowed);
  CHECK(decide(endpoint("access = \"full\""), "DELETE", "/x").allowed);
}

TEST_CASE("l7: allow rules by method, path glob and query; a deny rule beats them all") {
  const auto ep = endpoint(R"(rules = [
  { allow = { method = "GET", path = "/repos/**" } },
  { allow = { method = "POST", path = "/search", query = { q = "ok*", page = { any = ["1", "2"] } } } },
]
deny_rules = [{ method = "*", path = "/repos/secret/**" }, { method = "GET", path = "/repos/**", query = { debug = "1" } }])");
  CHECK(decide(ep, "GET", "/repos/a/b").allowed);
  CHECK(decide(ep, "GET", "/repos/a/b").rule == "rules[0]");
  CHECK(decide(ep, "HEAD", "/repos/a").allowed);  // a GET rule admits HEAD
  CHECK_FALSE(decide(ep, "GET", "/user").allowed);
  CHECK(decide(ep, "GET", "/user").reason == "no rule allows GET /user");
  CHECK_FALSE(decide(ep, "DELETE", "/repos/a").allowed);
  // Canonical first: a dot segment cannot climb out of the allowed tree into a denied one.
  CHECK_FALSE(decide(ep, "GET", "/repos/a/../secret/x").allowed);
  CHECK(decide(ep, "GET", "/repos/a/../secret/x").rule == "deny_rules[0]");
  CHECK_FALSE(decide(ep, "GET", "/user/../repos/secret/k").allowed);
  // Allow query: every value of a named key must match; a missing key fails.
  CHECK(decide(ep, "POST", "/search?q=okay&page=2").allowed);
  CHECK_FALSE(decide(ep, "POST", "/search?q=okay&page=3").allowed);
  CHECK_FALSE(decide(ep, "POST", "/search?q=okay&q=bad&page=1").allowed);
  CHECK_FALSE(decide(ep, "POST", "/search?q=okay").allowed);
  CHECK(decide(ep, "POST", "/search?q=ok%21&page=1&other=x").allowed);
  // Deny query: any matching value denies; a missing key leaves the rule out.
  CHECK_FALSE(decide(ep, "GET", "/repos/a?debug=0&debug=1").allowed);
  CHECK(decide(ep, "GET", "/repos/a?debug=0").allowed);
  CHECK(decide(ep, "GET", "/repos/a").allowed);
  // Deny beats the widest access.
  const auto full =
      endpoint("access = \"full\"\ndeny_rules = [{ method = \"DELETE\", path = \"/**\" }]");
  CHECK_FALSE(decide(full, "DELETE", "/anything").allowed);
  CHECK(decide(full, "PUT", "/anything").allowed);
}

TEST_CASE("l7: audit lets a denial through, marked") {
  const auto ep = endpoint("enforcement = \"audit\"\naccess = \"read-only\"");
  const auto d = decide(ep, "POST", "/x");
  CHECK(d.allowed);
  CHECK(d.audit_only);
  CHECK(d.reason == "access read-only does not allow POST");
  CHECK_FALSE(decide(ep, "GET", "/x").audit_only);
}

TEST_CASE("l7: the head's bytes frame one request, or none") {
  CHECK(check_head_bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  CHECK(check_head_bytes("GET / HTTP/1.1\r\nHost: a\r\nX: b\tc\r\n\r\n").ok());
  for (const char* bad : {
           "GET / HTTP/1.1\nHost: a\r\n\r\n",                  // bare LF
           "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",          // bare CR
           "GET / HTTP/1.1\r\nHost: a\r\n X: folded\r\n\r\n",  // obs-fold
           "GET / HTTP/1.1\r\nHost: a\r\n\tX: folded\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",                     // control byte
           "GET / HTTP/1.1\r\nHost: a\r\n",                             // no blank line
           "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\n\r\n",  // a second request
       })
    CHECK_FALSE(check_head_bytes(bad).ok());
  CHECK_FALSE(check_head_bytes(std::string("GET / HTTP/1.1\r\nHost: a\r\nX: ") +
                               std::string(kMaxHeadBytes, 'x') + "\r\n\r\n")
                  .ok());
  const std::string nul("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 30);
  CHECK_FALSE(check_head_bytes(nul).ok());
}

TEST_CASE("l7: Content-Length and Transfer-Encoding cannot be read two ways") {
  CHECK(check_framing({{"Host", "a"}}).ok());
  CHECK(check_framing({{"host", "a"}, {"Content-Length", " 12 "}}).ok());
  CHECK(check_framing({{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}}).ok());
  CHECK(check_framing(
            {{"Host", "a"}, {"Transfer-Encoding", "gzip"}, {"transfer-encoding", "Chunked"}})
            .ok());
  const std::vector<Fields> bad = {
      {{"Host", "a"}, {"Content-Length", "3"}, {"Transfer-Encoding", "chunked"}},
      {{"Host", "a"}, {"Content-Length", "3"}, {"Content-Length", "3"}},
      {{"Host", "a"}, {"Content-Length", "3"}, {"content-length", "4"}},
      {{"Host", "a"}, {"Content-Length", "-1"}},
      {{"Host", "a"}, {"Content-Length", "0x10"}},
      {{"Host", "a"}, {"Content-Length", ""}},
      {{"Host", "a"}, {"Transfer-Encoding", "chunked, gzip"}},
      {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "identity"}},
      {},
      {{"Host", "a"}, {"Host", "b"}},
  };
  for (const auto& fields : bad) CHECK_FALSE(check_framing(fields).ok());
}
