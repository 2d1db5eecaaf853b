#include "core/services.hpp"

#include <algorithm>
#include <set>

namespace openshell::services {
namespace {

using nlohmann::json;

Result<std::vector<providers::Provider>> providers_of(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() > kMaxProviders)
    return Error::invalid(std::string("services: '") + key + "' must be a list of at most " +
                          std::to_string(kMaxProviders) + " providers");
  std::vector<providers::Provider> out;
  for (const auto& record : *it) {
    auto p = providers::from_record(record.dump());
    if (!p) return p.error();
    out.push_back(std::move(*p));
  }
  return out;
}

}  // namespace

Result<json> to_json(const Services& services) {
  json attached = json::array();
  json routing = json::array();
  json routes = json::array();
  for (const auto& p : services.attached) attached.push_back(json::parse(providers::to_record(p)));
  for (const auto& p : services.routing) routing.push_back(json::parse(providers::to_record(p)));
  for (const auto& r : services.routes) routes.push_back(inference::to_json(r));
  json j = {{"attached", std::move(attached)},
            {"routing", std::move(routing)},
            {"routes", std::move(routes)},
            {"privacy", std::string(inference::to_string(services.privacy))}};
  if (j.dump().size() > kMaxBytes)
    return Error::invalid("the sandbox's providers and routes exceed " +
                          std::to_string(kMaxBytes / 1024) + " KiB together");
  return j;
}

Result<Services> from_json(const json& j) {
  if (!j.is_object()) return Error::invalid("services: not a JSON object");
  for (const auto& [key, value] : j.items())
    if (key != "attached" && key != "routing" && key != "routes" && key != "privacy")
      return Error::invalid("services: unknown member '" + key.substr(0, 32) + "'");
  Services out;
  auto attached = providers_of(j, "attached");
  if (!attached) return attached.error();
  auto routing = providers_of(j, "routing");
  if (!routing) return routing.error();
  out.attached = std::move(*attached);
  out.routing = std::move(*routing);
  std::set<std::string> keys;
  for (const auto& p : out.attached)
    for (const auto& [key, value] : p.credentials)
      if (!keys.insert(key).second)
        return Error::invalid("services: credential " + key + " is in two attached providers");
  const auto routes = j.find("routes");
  if (routes == j.end() || !routes->is_array() || routes->size() > kMaxRoutes)
    return Error::invalid("services: 'routes' must be a list of at most " +
                          std::to_string(kMaxRoutes));
  for (const auto& r : *routes) {
    auto route = inference::route_from_json(r);
    if (!route) return route.error();
    out.routes.push_back(std::move(*route));
  }
  const auto privacy = j.find("privacy");
  const auto parsed = privacy != j.end() && privacy->is_string()
                          ? inference::parse_privacy(privacy->get<std::string>())
                          : std::nullopt;
  if (!parsed) return Error::invalid("services: 'privacy' must be local-only, prefer-local or any");
  out.privacy = *parsed;
  return out;
}

std::vector<std::string> placeholder_env(const Services& services) {
  std::vector<std::string> env;
  for (const auto& p : services.attached)
    for (const auto& [key, value] : p.credentials)
      env.push_back(key + "=" + credentials::placeholder(key));
  return env;
}

credentials::Lookup lookup_for(const Services& services, std::string host, uint16_t port,
                               std::optional<std::string> binding) {
  return [&services, host = std::move(host), port,
          binding = std::move(binding)](std::string_view key) -> std::optional<std::string> {
    for (const auto& p : services.attached) {
      const auto it = p.credentials.find(std::string(key));
      if (it == p.credentials.end()) continue;
      if (!providers::bound(p, host, port, binding)) return std::nullopt;
      return it->second;
    }
    return std::nullopt;
  };
}

const providers::Provider* find_provider(const Services& services, std::string_view name) {
  for (const auto* list : {&services.attached, &services.routing})
    for (const auto& p : *list)
      if (p.name == name) return &p;
  return nullptr;
}

}  // namespace openshell::services
