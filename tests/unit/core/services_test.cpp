#include "core/services.hpp"

#include <catch2/catch.hpp>

using namespace openshell;
using namespace openshell::services;

namespace {

Services sample() {
  Services s;
  s.attached.push_back({"gh", providers::Type::kGithub, {{"GITHUB_TOKEN", "ghp_s3cret"}}});
  s.attached.push_back({"mine", providers::Type::kGeneric, {{"API_TOKEN", "s3cret"}}});
  s.routing.push_back({"oai", providers::Type::kOpenAi, {{"OPENAI_API_KEY", "sk-real"}}});
  inference::Route r;
  r.name = "gpt";
  r.base_url = "http://127.0.0.1:9000";
  r.provider = "oai";
  r.model = "gpt-4o";
  s.routes.push_back(r);
  s.privacy = inference::Privacy::kPreferLocal;
  return s;
}

}  // namespace

TEST_CASE("services: whole, round trip, and every limit checked") {
  auto j = to_json(sample());
  REQUIRE(j);
  auto back = from_json(*j);
  REQUIRE(back);
  CHECK(back->attached.size() == 2);
  CHECK(back->routing.front().credentials.at("OPENAI_API_KEY") == "sk-real");
  CHECK(back->routes.front().model == "gpt-4o");
  CHECK(back->privacy == inference::Privacy::kPreferLocal);

  nlohmann::json dup = *j;
  dup["attached"][1]["credentials"]["GITHUB_TOKEN"] = "x";
  CHECK_THAT(from_json(dup).error().message(), Catch::Contains("GITHUB_TOKEN is in two"));
  nlohmann::json extra = *j;
  extra["secrets"] = 1;
  CHECK_FALSE(from_json(extra));
  nlohmann::json privacy = *j;
  privacy["privacy"] = "cheap";
  CHECK_FALSE(from_json(privacy));

  Services big = sample();
  for (int i = 0; i < 4; ++i)
    big.attached.push_back({"p" + std::to_string(i), providers::Type::kGeneric,
                            {{"K" + std::to_string(i), std::string(16 * 1024, 'x')}}});
  auto refused = to_json(big);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message().find("xxxx") == std::string::npos);
}

TEST_CASE("services: placeholders for the agent, secrets only where bound") {
  const Services s = sample();
  const auto env = placeholder_env(s);
  CHECK(env == std::vector<std::string>{"GITHUB_TOKEN=openshell:resolve:env:GITHUB_TOKEN",
                                        "API_TOKEN=openshell:resolve:env:API_TOKEN"});
  // A routing provider's key is not the agent's: it resolves nowhere.
  CHECK_FALSE(lookup_for(s, "api.openai.com", 443, std::nullopt)("OPENAI_API_KEY"));
  CHECK(lookup_for(s, "api.github.com", 443, std::nullopt)("GITHUB_TOKEN") == "ghp_s3cret");
  CHECK_FALSE(lookup_for(s, "api.github.com", 8443, std::nullopt)("GITHUB_TOKEN"));
  CHECK_FALSE(lookup_for(s, "api.github.com", 443, std::string("mine"))("GITHUB_TOKEN"));
  CHECK(lookup_for(s, "my.example", 8080, std::string("mine"))("API_TOKEN") == "s3cret");
  CHECK_FALSE(lookup_for(s, "my.example", 8080, std::nullopt)("API_TOKEN"));
  CHECK(find_provider(s, "oai") != nullptr);
  CHECK(find_provider(s, "none") == nullptr);
}
