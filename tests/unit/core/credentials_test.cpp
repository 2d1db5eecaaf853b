#include "core/credentials.hpp"

#include <catch2/catch.hpp>
#include <map>

using namespace openshell::credentials;

namespace {

// What a bound endpoint may use: API_TOKEN and PASSWORD; OTHER exists but is bound elsewhere.
const Lookup kBound = [](std::string_view key) -> std::optional<std::string> {
  static const std::map<std::string, std::string, std::less<>> bound = {
      {"API_TOKEN", "s3cret"}, {"PASSWORD", "p@ss word/+"}};
  if (auto it = bound.find(key); it != bound.end()) return it->second;
  return std::nullopt;
};

}  // namespace

TEST_CASE("credentials: keys and placeholders") {
  CHECK(placeholder("API_TOKEN") == "openshell:resolve:env:API_TOKEN");
  CHECK(valid_key("API_TOKEN"));
  CHECK(valid_key("_x1"));
  CHECK_FALSE(valid_key(""));
  CHECK_FALSE(valid_key("1ABC"));
  CHECK_FALSE(valid_key("A-B"));
  CHECK_FALSE(valid_key(std::string(129, 'A')));
  CHECK(valid_key(std::string(128, 'A')));
  CHECK(keys_in("Bearer openshell:resolve:env:API_TOKEN") == std::vector<std::string>{"API_TOKEN"});
  CHECK(keys_in("/a/openshell%3aresolve%3Aenv%3AKEY_2?x=openshell:resolve:env:API_TOKEN&y="
                "openshell:resolve:env:KEY_2") == std::vector<std::string>{"KEY_2", "API_TOKEN"});
  CHECK(keys_in("nothing here, openshell:resolve: almost").empty());
  CHECK(valid_secret("s3cret\tx").ok());
  CHECK_FALSE(valid_secret("a\r\nX-Injected: 1").ok());
  CHECK_FALSE(valid_secret("").ok());
}

TEST_CASE("credentials: headers, Bearer and Basic") {
  auto bearer = resolve_header("Bearer openshell:resolve:env:API_TOKEN", kBound);
  REQUIRE(bearer.ok());
  CHECK(bearer->text == "Bearer s3cret");
  CHECK(bearer->keys == std::vector<std::string>{"API_TOKEN"});
  // Basic user:placeholder, encoded: decoded, replaced, encoded again.
  // "me:openshell:resolve:env:PASSWORD" and "me:p@ss word/+".
  auto basic = resolve_header("Basic bWU6b3BlbnNoZWxsOnJlc29sdmU6ZW52OlBBU1NXT1JE", kBound);
  REQUIRE(basic.ok());
  CHECK(basic->text == "Basic bWU6cEBzcyB3b3JkLys=");
  // No placeholder: the value as it was, nothing used.
  auto plain = resolve_header("Basic dXNlcjpwdw==", kBound);
  REQUIRE(plain.ok());
  CHECK(plain->text == "Basic dXNlcjpwdw==");
  CHECK(plain->keys.empty());
  // A key this endpoint may not use, or that nobody has: refused, naming the key, never a value.
  auto other = resolve_header("token openshell:resolve:env:OTHER", kBound);
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().message() == "credential OTHER is not bound to this endpoint");
  CHECK_FALSE(resolve_header("openshell:resolve:env:", kBound).ok());
  // A secret that would break the header is never put in one.
  const Lookup injecting = [](std::string_view) -> std::optional<std::string> {
    return "x\r\nHost: evil";
  };
  auto injected = resolve_header("Bearer openshell:resolve:env:API_TOKEN", injecting);
  REQUIRE_FALSE(injected.ok());
  CHECK(injected.error().message().find("evil") == std::string::npos);
}

TEST_CASE("credentials: path segments and query values, raw or percent-encoded") {
  auto t = resolve_target(
      "/v1/openshell:resolve:env:PASSWORD/x?key=openshell%3Aresolve%3Aenv%3AAPI_TOKEN&z=1", kBound);
  REQUIRE(t.ok());
  CHECK(t->text == "/v1/p%40ss%20word%2F%2B/x?key=s3cret&z=1");
  CHECK(t->keys == std::vector<std::string>{"PASSWORD", "API_TOKEN"});
  CHECK_FALSE(resolve_target("/x?k=openshell:resolve:env:OTHER", kBound).ok());
  auto none = resolve_target("/plain?q=1", kBound);
  REQUIRE(none.ok());
  CHECK(none->text == "/plain?q=1");
}

TEST_CASE("credentials: a header's keys, inside Basic too") {
  // "me:openshell:resolve:env:API_TOKEN", as curl -u sends it.
  CHECK(keys_in_header("Basic bWU6b3BlbnNoZWxsOnJlc29sdmU6ZW52OkFQSV9UT0tFTg==") ==
        std::vector<std::string>{"API_TOKEN"});
  CHECK(keys_in_header("Bearer openshell:resolve:env:A") == std::vector<std::string>{"A"});
  CHECK(keys_in_header("Basic bWU6cGFzcw==").empty());  // me:pass
  CHECK(keys_in_header("Basic !!!").empty());
}

TEST_CASE("credentials: bodies, written for their type") {
  CHECK(body_kind("application/json") == BodyKind::kJson);
  CHECK(body_kind("application/vnd.api+json; charset=utf-8") == BodyKind::kJson);
  CHECK(body_kind("Application/X-WWW-Form-Urlencoded") == BodyKind::kForm);
  CHECK(body_kind("text/plain") == BodyKind::kText);
  CHECK(body_kind("   ") == BodyKind::kText);
  CHECK(body_kind("") == BodyKind::kText);

  const std::string json = R"({"token":"openshell:resolve:env:PASSWORD"})";
  CHECK(resolve_body(json, BodyKind::kJson, kBound)->text == R"({"token":"p@ss word/+"})");
  const Lookup quoting = [](std::string_view) -> std::optional<std::string> {
    return std::string("a\"b\\c");
  };
  CHECK(resolve_body(json, BodyKind::kJson, quoting)->text == R"({"token":"a\"b\\c"})");
  CHECK(resolve_body("pw=openshell%3Aresolve%3Aenv%3APASSWORD&x=1", BodyKind::kForm, kBound)
            ->text == "pw=p%40ss%20word%2F%2B&x=1");
  CHECK(resolve_body("key openshell:resolve:env:API_TOKEN", BodyKind::kText, kBound)->text ==
        "key s3cret");
  auto refused = resolve_body("openshell:resolve:env:OTHER", BodyKind::kText, kBound);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message() == "credential OTHER is not bound to this endpoint");
}
