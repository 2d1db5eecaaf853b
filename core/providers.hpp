// Providers (DESIGN.md §5; issue 16 items 1-3, the pure part): named credential sets the daemon
// holds, each of a type whose built-in profile knows the hosts it serves and how its API takes
// a key. A provider's record (what the store keeps) and what may be shown of it (never a value)
// are here too. No I/O.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace openshell::providers {

enum class Type { kGeneric, kGithub, kOpenAi, kAnthropic, kNvidia };
[[nodiscard]] std::optional<Type> parse_type(std::string_view text);  // "generic", "github", ...
[[nodiscard]] std::string_view to_string(Type type);

// What a type knows. `hosts` are the endpoints (port 443) a provider of this type is bound to
// without a policy naming it; a generic provider has none (an endpoint's credential_binding
// binds it). The key goes in `auth_header`, after `auth_scheme` and a space when that is set
// ("Authorization: Bearer KEY", "x-api-key: KEY").
struct Profile {
  Type type = Type::kGeneric;
  std::vector<std::string> hosts;
  std::string auth_header;
  std::string auth_scheme;
};
[[nodiscard]] const Profile& profile(Type type);

inline constexpr size_t kMaxCredentials = 64;
inline constexpr size_t kMaxValueBytes = 16 * 1024;

struct Provider {
  std::string name;  // the sandbox-name rule (core/names)
  Type type = Type::kGeneric;
  std::map<std::string, std::string> credentials;  // KEY -> value
};

// Every rule a provider must meet before it is stored or used: its name, at least one and at
// most kMaxCredentials credentials, each KEY valid (core/credentials) and each value a valid
// secret of at most kMaxValueBytes. The error names the key, never the value.
[[nodiscard]] Status validate(const Provider& provider);

// The store's record: JSON {"name", "type", "credentials": {KEY: value}}. Parsing validates.
[[nodiscard]] std::string to_record(const Provider& provider);
[[nodiscard]] Result<Provider> from_record(std::string_view record);

// What `provider get` and `list` show: name, type, the keys (names only), the profile's hosts.
[[nodiscard]] nlohmann::json describe(const Provider& provider);

// Whether `provider`'s credentials may be used on an endpoint at host:port. An endpoint with a
// credential_binding (`binding`) takes that provider's and no other's; otherwise a provider is
// bound to its profile's hosts on port 443. `host` is normalised (lower case, no trailing dot).
[[nodiscard]] bool bound(const Provider& provider, std::string_view host, uint16_t port,
                         const std::optional<std::string>& binding);

}  // namespace openshell::providers
