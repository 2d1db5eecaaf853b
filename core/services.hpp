// What a sandbox's proxy holds besides its policy (DESIGN.md §5; issue 16): the providers
// whose credentials it injects and the inference routes of its https://inference.local. The
// daemon sends it whole, at the start (down the status channel) and on every change (a control
// frame), and the supervisor swaps it in at once. It is the one message that carries secret
// values; nothing here ever logs or describes one.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/credentials.hpp"
#include "core/inference.hpp"
#include "core/providers.hpp"
#include "core/result.hpp"

namespace openshell::services {

// The encoded message at most: a control frame (64 KiB) holds it with room to spare.
inline constexpr size_t kMaxBytes = 56 * 1024;
inline constexpr size_t kMaxProviders = 32;
inline constexpr size_t kMaxRoutes = 32;

struct Services {
  // Attached providers (sandbox create --provider): the agent holds their placeholders.
  std::vector<providers::Provider> attached;
  // Providers only the router uses (its routes' keys): no placeholder of theirs resolves.
  std::vector<providers::Provider> routing;
  std::vector<inference::Route> routes;  // the sandbox's, in its order
  inference::Privacy privacy = inference::Privacy::kAny;
};

// {"attached": [provider record...], "routing": [...], "routes": [...], "privacy": "..."}.
// Error when it would exceed kMaxBytes (naming no value).
[[nodiscard]] Result<nlohmann::json> to_json(const Services& services);
// Validates everything (each provider and route, the limits; a KEY in two attached providers).
[[nodiscard]] Result<Services> from_json(const nlohmann::json& j);

// The agent's environment entries: KEY=openshell:resolve:env:KEY for every attached key.
[[nodiscard]] std::vector<std::string> placeholder_env(const Services& services);

// The secrets an endpoint may use: an attached provider's KEY when that provider is bound to
// host:port (its profile, or the endpoint's credential_binding).
[[nodiscard]] credentials::Lookup lookup_for(const Services& services, std::string host,
                                             uint16_t port, std::optional<std::string> binding);

// A provider by name, attached or routing; null when the sandbox has none of that name.
[[nodiscard]] const providers::Provider* find_provider(const Services& services,
                                                       std::string_view name);

}  // namespace openshell::services
