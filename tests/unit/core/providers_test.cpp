#include "core/providers.hpp"

#include <catch2/catch.hpp>

using namespace openshell::providers;

TEST_CASE("providers: types and their profiles") {
  for (const char* name : {"generic", "github", "openai", "anthropic", "nvidia"}) {
    INFO(name);
    REQUIRE(parse_type(name).has_value());
    CHECK(to_string(*parse_type(name)) == name);
  }
  CHECK_FALSE(parse_type("GitHub").has_value());
  CHECK(profile(Type::kAnthropic).auth_header == "x-api-key");
  CHECK(profile(Type::kAnthropic).auth_scheme.empty());
  CHECK(profile(Type::kOpenAi).auth_scheme == "Bearer");
  CHECK(profile(Type::kGeneric).hosts.empty());
  CHECK(profile(Type::kGithub).hosts.front() == "api.github.com");
}

TEST_CASE("providers: validation names the key, never the value") {
  Provider p{"gh", Type::kGithub, {{"GITHUB_TOKEN", "ghp_s3cret"}}};
  CHECK(validate(p).ok());
  Provider bad_name = p;
  bad_name.name = "../x";
  CHECK_FALSE(validate(bad_name).ok());
  Provider none{"gh", Type::kGithub, {}};
  CHECK(validate(none).error().message() == "provider gh has no credential");
  Provider bad_key{"gh", Type::kGithub, {{"1BAD", "v"}}};
  CHECK_FALSE(validate(bad_key).ok());
  Provider injected{"gh", Type::kGithub, {{"TOKEN", "s3cret\r\nX: y"}}};
  auto st = validate(injected);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message().find("TOKEN") != std::string::npos);
  CHECK(st.error().message().find("s3cret") == std::string::npos);
  Provider huge{"gh", Type::kGithub, {{"TOKEN", std::string(kMaxValueBytes + 1, 'a')}}};
  CHECK_FALSE(validate(huge).ok());
}

TEST_CASE("providers: the record round-trips; describe shows no value") {
  const Provider p{"work-gh", Type::kGithub, {{"GITHUB_TOKEN", "ghp_s3cret"}, {"USER", "me"}}};
  auto back = from_record(to_record(p));
  REQUIRE(back.ok());
  CHECK(back->name == p.name);
  CHECK(back->type == p.type);
  CHECK(back->credentials == p.credentials);
  for (const char* broken : {"", "[]", R"({"name": "x"})",
                             R"({"name": "x", "type": "vault", "credentials": {"K": "v"}})",
                             R"({"name": "x", "type": "generic", "credentials": {"K": 1}})",
                             R"({"name": "x", "type": "generic", "credentials": {}})"}) {
    INFO(broken);
    CHECK_FALSE(from_record(broken).ok());
  }
  const auto shown = describe(p).dump();
  CHECK(shown.find("ghp_s3cret") == std::string::npos);
  CHECK(shown.find("GITHUB_TOKEN") != std::string::npos);
  CHECK(shown.find("api.github.com") != std::string::npos);
}

TEST_CASE("providers: bound to their profile's hosts, or to what an endpoint names") {
  const Provider gh{"gh", Type::kGithub, {{"T", "v"}}};
  const Provider custom{"internal", Type::kGeneric, {{"T", "v"}}};
  CHECK(bound(gh, "api.github.com", 443, std::nullopt));
  CHECK_FALSE(bound(gh, "api.github.com", 8443, std::nullopt));
  CHECK_FALSE(bound(gh, "evil.example", 443, std::nullopt));
  CHECK_FALSE(bound(custom, "api.internal.example", 443, std::nullopt));
  CHECK(bound(custom, "api.internal.example", 8080, std::string("internal")));
  // An endpoint that names a provider takes that one's only.
  CHECK_FALSE(bound(gh, "api.github.com", 443, std::string("internal")));
}
