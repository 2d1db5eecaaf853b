#include "core/inference.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/path_glob.hpp"

namespace openshell::inference {
namespace {

using nlohmann::json;

Result<json> parse_object(std::string_view body) {
  if (body.size() > kMaxRequestBody)
    return Error::invalid("request body larger than " + std::to_string(kMaxRequestBody) + " bytes");
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object())
    return Error::invalid("request body is not a JSON object");
  return parsed;
}

bool model_matches(const Route& route, const std::optional<std::string>& requested) {
  if (!requested || route.models.empty()) return true;
  return std::any_of(route.models.begin(), route.models.end(), [&](const std::string& glob) {
    return policy::glob_matches(glob, *requested, policy::GlobSyntax::kFlat);
  });
}

uint64_t count(const json& usage, const char* key) {
  const auto it = usage.find(key);
  return it != usage.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

}  // namespace

std::optional<Api> parse_api(std::string_view text) {
  if (text == "openai") return Api::kOpenAi;
  if (text == "anthropic") return Api::kAnthropic;
  return std::nullopt;
}

std::optional<Locality> parse_locality(std::string_view text) {
  if (text == "local") return Locality::kLocal;
  if (text == "remote") return Locality::kRemote;
  return std::nullopt;
}

std::optional<Privacy> parse_privacy(std::string_view text) {
  if (text == "local-only") return Privacy::kLocalOnly;
  if (text == "prefer-local") return Privacy::kPreferLocal;
  if (text == "any") return Privacy::kAny;
  return std::nullopt;
}

std::string_view to_string(Api api) { return api == Api::kOpenAi ? "openai" : "anthropic"; }

std::string_view to_string(Locality locality) {
  return locality == Locality::kLocal ? "local" : "remote";
}

std::string_view to_string(Privacy privacy) {
  switch (privacy) {
    case Privacy::kLocalOnly:
      return "local-only";
    case Privacy::kPreferLocal:
      return "prefer-local";
    case Privacy::kAny:
      return "any";
  }
  return "any";
}

std::optional<Call> classify(std::string_view method, std::string_view path) {
  if (method == "GET" && (path == "/v1/models" || path == "/v1/models/")) return Call::kModels;
  if (method != "POST") return std::nullopt;
  if (path == "/v1/chat/completions") return Call::kChatCompletions;
  if (path == "/v1/completions") return Call::kCompletions;
  if (path == "/v1/responses") return Call::kResponses;
  if (path == "/v1/embeddings") return Call::kEmbeddings;
  if (path == "/v1/messages") return Call::kMessages;
  return std::nullopt;
}

Api api_of(Call call) { return call == Call::kMessages ? Api::kAnthropic : Api::kOpenAi; }

std::vector<const Route*> candidates(const std::vector<Route>& routes, Privacy privacy, Api api,
                                     const std::optional<std::string>& requested) {
  std::vector<const Route*> out;
  for (const auto& route : routes) {
    if (privacy == Privacy::kLocalOnly && route.locality != Locality::kLocal) continue;
    if (route.api != api || !model_matches(route, requested)) continue;
    out.push_back(&route);
  }
  const bool local_first = privacy == Privacy::kPreferLocal;
  // Stable: equal routes keep the sandbox's order.
  std::stable_sort(out.begin(), out.end(), [local_first](const Route* a, const Route* b) {
    if (local_first && a->locality != b->locality) return a->locality == Locality::kLocal;
    return a->cost < b->cost;
  });
  return out;
}

Result<std::optional<std::string>> requested_model(std::string_view body) {
  auto parsed = parse_object(body);
  if (!parsed) return parsed.error();
  const auto it = parsed->find("model");
  if (it == parsed->end() || !it->is_string()) return std::optional<std::string>();
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::string> with_model(std::string_view body, std::string_view model) {
  auto parsed = parse_object(body);
  if (!parsed) return parsed.error();
  (*parsed)["model"] = std::string(model);
  return parsed->dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Usage> usage_of(std::string_view text) {
  const json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  const json* usage = nullptr;
  if (auto it = parsed.find("usage"); it != parsed.end() && it->is_object()) {
    usage = &*it;
  } else if (auto msg = parsed.find("message"); msg != parsed.end() && msg->is_object()) {
    if (auto inner = msg->find("usage"); inner != msg->end() && inner->is_object()) usage = &*inner;
  }
  if (usage == nullptr) return std::nullopt;
  Usage u;
  u.input = count(*usage, "prompt_tokens") + count(*usage, "input_tokens");
  u.output = count(*usage, "completion_tokens") + count(*usage, "output_tokens");
  return u;
}

std::string models_list(const std::vector<const Route*>& routes) {
  json data = json::array();
  for (const Route* route : routes)
    data.push_back({{"id", route->model}, {"object", "model"}, {"owned_by", route->name}});
  return json{{"object", "list"}, {"data", data}}.dump();
}

}  // namespace openshell::inference
