#include "core/inference.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace openshell::inference;

namespace {

Route route(std::string name, Api api, Locality where, uint32_t cost,
            std::vector<std::string> models = {}) {
  Route r;
  r.name = std::move(name);
  r.base_url = "https://" + r.name + ".example";
  r.api = api;
  r.provider = "p";
  r.model = r.name + "-model";
  r.locality = where;
  r.cost = cost;
  r.models = std::move(models);
  return r;
}

std::vector<std::string> names(const std::vector<const Route*>& routes) {
  std::vector<std::string> out;
  for (const Route* r : routes) out.push_back(r->name);
  return out;
}

}  // namespace

TEST_CASE("inference: the calls inference.local takes") {
  CHECK(classify("POST", "/v1/chat/completions") == Call::kChatCompletions);
  CHECK(classify("POST", "/v1/completions") == Call::kCompletions);
  CHECK(classify("POST", "/v1/responses") == Call::kResponses);
  CHECK(classify("POST", "/v1/embeddings") == Call::kEmbeddings);
  CHECK(classify("GET", "/v1/models") == Call::kModels);
  CHECK(classify("POST", "/v1/messages") == Call::kMessages);
  CHECK_FALSE(classify("GET", "/v1/chat/completions").has_value());
  CHECK_FALSE(classify("POST", "/v1/files").has_value());
  CHECK_FALSE(classify("POST", "/v1/messages/../x").has_value());
  CHECK(api_of(Call::kMessages) == Api::kAnthropic);
  CHECK(api_of(Call::kEmbeddings) == Api::kOpenAi);
  CHECK(parse_privacy("local-only") == Privacy::kLocalOnly);
  CHECK(parse_privacy("prefer-local") == Privacy::kPreferLocal);
  CHECK(parse_privacy("any") == Privacy::kAny);
  CHECK_FALSE(parse_privacy("local").has_value());
  CHECK(to_string(*parse_api("anthropic")) == "anthropic");
  CHECK(to_string(*parse_locality("local")) == "local");
}

TEST_CASE("inference: routes by privacy, API, model globs, then cost; the rest is failover") {
  const std::vector<Route> routes = {
      route("claude", Api::kAnthropic, Locality::kRemote, 10, {"claude-*"}),
      route("gpt", Api::kOpenAi, Locality::kRemote, 5, {"gpt-*", "o?-mini"}),
      route("llama", Api::kOpenAi, Locality::kLocal, 8),
      route("cheap", Api::kOpenAi, Locality::kRemote, 1, {"gpt-4o-mini"}),
  };
  // any: cost alone among those whose globs match.
  CHECK(names(candidates(routes, Privacy::kAny, Api::kOpenAi, "gpt-4o-mini")) ==
        std::vector<std::string>{"cheap", "gpt", "llama"});
  CHECK(names(candidates(routes, Privacy::kAny, Api::kOpenAi, "gpt-4o")) ==
        std::vector<std::string>{"gpt", "llama"});
  CHECK(names(candidates(routes, Privacy::kAny, Api::kOpenAi, "o3-mini")) ==
        std::vector<std::string>{"gpt", "llama"});
  // prefer-local: local first, then the rest by cost.
  CHECK(names(candidates(routes, Privacy::kPreferLocal, Api::kOpenAi, "gpt-4o-mini")) ==
        std::vector<std::string>{"llama", "cheap", "gpt"});
  // local-only: never a remote route, whatever it costs.
  CHECK(names(candidates(routes, Privacy::kLocalOnly, Api::kOpenAi, "gpt-4o-mini")) ==
        std::vector<std::string>{"llama"});
  CHECK(candidates(routes, Privacy::kLocalOnly, Api::kAnthropic, "claude-3").empty());
  // Anthropic calls go to Anthropic routes only; no model asked: every route of the API.
  CHECK(names(candidates(routes, Privacy::kAny, Api::kAnthropic, "claude-sonnet-4")) ==
        std::vector<std::string>{"claude"});
  CHECK(names(candidates(routes, Privacy::kAny, Api::kOpenAi, std::nullopt)) ==
        std::vector<std::string>{"cheap", "gpt", "llama"});
  // A route whose globs name the model goes before a cheaper catch-all.
  const std::vector<Route> specific = {route("all", Api::kOpenAi, Locality::kRemote, 0),
                                       route("claude", Api::kOpenAi, Locality::kRemote, 9,
                                             {"claude-*"})};
  CHECK(names(candidates(specific, Privacy::kAny, Api::kOpenAi, "claude-3")) ==
        std::vector<std::string>{"claude", "all"});
  CHECK(names(candidates(specific, Privacy::kAny, Api::kOpenAi, "gpt-4o")) ==
        std::vector<std::string>{"all"});
  // Equal costs keep the sandbox's order: its first route first.
  const std::vector<Route> equal = {route("b", Api::kOpenAi, Locality::kRemote, 3),
                                    route("a", Api::kOpenAi, Locality::kRemote, 3)};
  CHECK(names(candidates(equal, Privacy::kAny, Api::kOpenAi, std::nullopt)) ==
        std::vector<std::string>{"b", "a"});
}

TEST_CASE("inference: the request's model, read and rewritten; usage; the models list") {
  auto m = requested_model(R"({"model": "anything", "messages": [{"role": "user"}]})");
  REQUIRE(m.ok());
  CHECK(*m == std::optional<std::string>("anything"));
  auto none = requested_model(R"({"input": "x"})");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  CHECK_FALSE(requested_model("[1, 2]").ok());
  CHECK_FALSE(requested_model("{not json").ok());
  CHECK_FALSE(requested_model(std::string(kMaxRequestBody + 1, ' ')).ok());

  auto rewritten = with_model(R"({"model": "anything", "stream": true, "n": 2})", "llama-3.1-8b");
  REQUIRE(rewritten.ok());
  const auto body = nlohmann::json::parse(*rewritten);
  CHECK(body["model"] == "llama-3.1-8b");
  CHECK(body["stream"] == true);
  CHECK(body["n"] == 2);
  CHECK(nlohmann::json::parse(*with_model("{}", "m"))["model"] == "m");

  auto openai = usage_of(R"({"id": "x", "usage": {"prompt_tokens": 12, "completion_tokens": 34}})");
  REQUIRE(openai.has_value());
  CHECK((openai->input == 12 && openai->output == 34));
  auto anthropic = usage_of(
      R"({"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}})");
  REQUIRE(anthropic.has_value());
  CHECK((anthropic->input == 5 && anthropic->output == 1));
  CHECK_FALSE(usage_of(R"({"choices": []})").has_value());
  CHECK_FALSE(usage_of("data: [DONE]").has_value());

  const std::vector<Route> routes = {route("llama", Api::kOpenAi, Locality::kLocal, 0),
                                     route("gpt", Api::kOpenAi, Locality::kRemote, 1)};
  const auto list = nlohmann::json::parse(
      models_list(candidates(routes, Privacy::kAny, Api::kOpenAi, std::nullopt)));
  CHECK(list["object"] == "list");
  REQUIRE(list["data"].size() == 2);
  CHECK(list["data"][0]["id"] == "llama-model");
  CHECK(list["data"][0]["owned_by"] == "llama");
  CHECK(list["data"][1]["id"] == "gpt-model");
}

TEST_CASE("inference: base URLs and routes as the daemon stores them") {
  auto url = parse_base_url("http://127.0.0.1:8080/openai/");
  REQUIRE(url);
  CHECK_FALSE(url->tls);
  CHECK(url->host == "127.0.0.1");
  CHECK(url->port == 8080);
  CHECK(url->prefix == "/openai");
  url = parse_base_url("https://API.Example.com");
  REQUIRE(url);
  CHECK(url->tls);
  CHECK(url->host == "api.example.com");
  CHECK(url->port == 443);
  CHECK(url->prefix.empty());
  CHECK(parse_base_url("https://[::1]:9/")->host == "::1");
  for (const char* bad : {"ftp://x", "https://", "https://u:p@x/", "https://x/a b", "https://x/?q",
                          "https://x:99999"}) {
    INFO(bad);
    CHECK_FALSE(parse_base_url(bad));
  }

  Route r = route("local-llama", Api::kOpenAi, Locality::kLocal, 0, {"llama-*"});
  auto back = route_from_json(to_json(r));
  REQUIRE(back);
  CHECK(back->name == r.name);
  CHECK(back->base_url == r.base_url);
  CHECK(back->locality == Locality::kLocal);
  CHECK(back->models == r.models);
  nlohmann::json j = to_json(r);
  j["model"] = "";
  CHECK_THAT(route_from_json(j).error().message(), Catch::Contains("needs a model"));
  j = to_json(r);
  j["provider"] = "";
  CHECK_THAT(route_from_json(j).error().message(), Catch::Contains("needs a provider"));
  j = to_json(r);
  j.erase("cost");
  CHECK_FALSE(route_from_json(j));
}
