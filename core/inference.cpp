#include "core/inference.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/names.hpp"
#include "core/net_guard.hpp"
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
  // A route whose globs name the model asked for is meant for it: before the catch-alls.
  const auto named = [&requested](const Route* r) { return requested && !r->models.empty(); };
  // Stable: equal routes keep the sandbox's order.
  std::stable_sort(out.begin(), out.end(), [&](const Route* a, const Route* b) {
    if (local_first && a->locality != b->locality) return a->locality == Locality::kLocal;
    if (named(a) != named(b)) return named(a);
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

Result<BaseUrl> parse_base_url(std::string_view url) {
  BaseUrl out;
  std::string_view rest = url;
  if (rest.size() > kMaxTextBytes) return Error::invalid("base_url is too long");
  if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
  } else if (rest.substr(0, 7) == "http://") {
    out.tls = false;
    rest.remove_prefix(7);
  } else {
    return Error::invalid("base_url must start with https:// or http://");
  }
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  if (authority.find('@') != std::string_view::npos)
    return Error::invalid("base_url may not hold credentials (give the route a provider)");
  if (!net::split_authority(authority, &out.host, &out.port, out.tls ? 443 : 80) ||
      out.host.empty())
    return Error::invalid("base_url has no valid host[:port]");
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  for (char& c : out.host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char c : prefix) {
    if (c <= ' ' || c == 0x7f || c == '?' || c == '#')
      return Error::invalid("base_url path may hold no space, control byte, query or fragment");
  }
  out.prefix = std::string(prefix);
  return out;
}

Status validate(const Route& route) {
  if (!valid_sandbox_name(route.name))
    return Error::invalid("route name '" + route.name.substr(0, 64) +
                          "': use 1-63 of a-z, 0-9 and '-', starting with a letter or digit");
  if (auto url = parse_base_url(route.base_url); !url)
    return url.error().wrap("route " + route.name);
  if (!valid_sandbox_name(route.provider))
    return Error::invalid("route " + route.name + " needs a provider (--provider NAME)");
  const auto printable = [](const std::string& s) {
    return !s.empty() && s.size() <= kMaxTextBytes &&
           std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c != 0x7f; });
  };
  if (!printable(route.model))
    return Error::invalid("route " + route.name + " needs a model (printable, no space)");
  if (route.models.size() > kMaxModels)
    return Error::invalid("route " + route.name + ": at most " + std::to_string(kMaxModels) +
                          " model globs");
  for (const auto& glob : route.models)
    if (!printable(glob))
      return Error::invalid("route " + route.name + ": a model glob must be printable, no space");
  return {};
}

json to_json(const Route& route) {
  return json{{"name", route.name},
              {"base_url", route.base_url},
              {"api", std::string(to_string(route.api))},
              {"provider", route.provider},
              {"model", route.model},
              {"locality", std::string(to_string(route.locality))},
              {"cost", route.cost},
              {"models", route.models}};
}

Result<Route> route_from_json(const json& j) {
  if (!j.is_object()) return Error::invalid("a route is a JSON object");
  const auto text = [&j](const char* key) -> std::optional<std::string> {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  Route r;
  const auto name = text("name");
  const auto base = text("base_url");
  const auto api = text("api");
  const auto provider = text("provider");
  const auto model = text("model");
  const auto locality = text("locality");
  const auto cost = j.find("cost");
  const auto models = j.find("models");
  if (!name || !base || !api || !provider || !model || !locality || cost == j.end() ||
      !cost->is_number_unsigned() || cost->get<uint64_t>() > UINT32_MAX || models == j.end() ||
      !models->is_array() || models->size() > kMaxModels)
    return Error::invalid("a route needs name, base_url, api, provider, model, locality, cost "
                          "and models");
  r.name = *name;
  r.base_url = *base;
  r.provider = *provider;
  r.model = *model;
  r.cost = static_cast<uint32_t>(cost->get<uint64_t>());
  const auto a = parse_api(*api);
  const auto l = parse_locality(*locality);
  if (!a || !l) return Error::invalid("route " + r.name + ": unknown api or locality");
  r.api = *a;
  r.locality = *l;
  for (const auto& m : *models) {
    if (!m.is_string()) return Error::invalid("route " + r.name + ": models are strings");
    r.models.push_back(m.get<std::string>());
  }
  if (auto st = validate(r); !st) return st.error();
  return r;
}

}  // namespace openshell::inference
