// The privacy router's pure part (DESIGN.md §5; issue 16 items 6-9): which calls
// https://inference.local takes, which of a sandbox's routes may serve one and in what order
// (the order is the failover order), and the request and response bodies as the router reads
// and rewrites them. No I/O: the supervisor's proxy does the HTTP.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace openshell::inference {

enum class Api { kOpenAi, kAnthropic };
enum class Locality { kLocal, kRemote };
// A sandbox's [inference] privacy: local-only never uses a remote route; prefer-local tries
// local routes first; any orders by cost alone.
enum class Privacy { kLocalOnly, kPreferLocal, kAny };

[[nodiscard]] std::optional<Api> parse_api(std::string_view text);  // "openai", "anthropic"
[[nodiscard]] std::optional<Locality> parse_locality(std::string_view text);  // "local", "remote"
[[nodiscard]] std::optional<Privacy> parse_privacy(std::string_view text);
[[nodiscard]] std::string_view to_string(Api api);
[[nodiscard]] std::string_view to_string(Locality locality);
[[nodiscard]] std::string_view to_string(Privacy privacy);

// A named backend the daemon holds (`openshellctl inference route set`).
struct Route {
  std::string name;
  std::string base_url;  // "https://host[:port][/prefix]" or http:// for a local server
  Api api = Api::kOpenAi;
  std::string provider;  // whose key is injected
  std::string model;     // what the request's `model` becomes
  Locality locality = Locality::kRemote;
  uint32_t cost = 0;
  std::vector<std::string> models;  // globs of the requested models it serves; empty: any
};

// A route's base_url taken apart: "http(s)://host[:port][/prefix]" (prefix without a trailing
// '/'; the call's path, "/v1/...", follows it).
struct BaseUrl {
  bool tls = true;
  std::string host;  // lower case; an IPv6 address without brackets
  uint16_t port = 443;
  std::string prefix;
};
[[nodiscard]] Result<BaseUrl> parse_base_url(std::string_view url);

inline constexpr size_t kMaxModels = 32;     // a route's model globs
inline constexpr size_t kMaxTextBytes = 512;  // a model, glob or base_url

// Every rule a route must meet before the daemon stores it: its name and provider's name (the
// sandbox-name rule), a base_url parse_base_url takes, a model, at most kMaxModels globs.
[[nodiscard]] Status validate(const Route& route);
// As the daemon stores and sends it: {"name", "base_url", "api", "provider", "model",
// "locality", "cost", "models"}. Parsing validates.
[[nodiscard]] nlohmann::json to_json(const Route& route);
[[nodiscard]] Result<Route> route_from_json(const nlohmann::json& j);

// The calls inference.local takes, by method and path (without the query).
enum class Call { kChatCompletions, kCompletions, kResponses, kEmbeddings, kModels, kMessages };
[[nodiscard]] std::optional<Call> classify(std::string_view method, std::string_view path);
[[nodiscard]] Api api_of(Call call);

// The routes that may serve a call of `api` for the `requested` model, best first:
//   1. those `privacy` allows (local-only: local routes only);
//   2. of the API asked for, whose model globs match `requested` (no model asked: every route
//      passes, and the sandbox's first route is its first choice among equals);
//   3. prefer-local: local ones before remote ones; then those whose globs name the model
//      asked for before catch-alls (no globs); then the lowest cost; then the sandbox's order.
//      The rest are the failover, in this order.
[[nodiscard]] std::vector<const Route*> candidates(const std::vector<Route>& routes,
                                                   Privacy privacy, Api api,
                                                   const std::optional<std::string>& requested);

inline constexpr size_t kMaxRequestBody = 10 << 20;  // a larger request is refused (413)

// The request body's "model" (nullopt when it has none). Error when the body is not a JSON
// object or is larger than kMaxRequestBody.
[[nodiscard]] Result<std::optional<std::string>> requested_model(std::string_view body);
// The body with "model" set to `model`; every other member as it was.
[[nodiscard]] Result<std::string> with_model(std::string_view body, std::string_view model);

// Token counts a backend reports in a response body, or in one SSE event's data: OpenAI's
// usage.prompt_tokens / completion_tokens, Anthropic's usage.input_tokens / output_tokens (also
// under "message", as its message_start event puts it).
struct Usage {
  uint64_t input = 0;
  uint64_t output = 0;
};
[[nodiscard]] std::optional<Usage> usage_of(std::string_view json);

// GET /v1/models: {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by":
// ROUTE}, ...]}, one entry per route, in order.
[[nodiscard]] std::string models_list(const std::vector<const Route*>& routes);

}  // namespace openshell::inference
