#include "core/providers.hpp"

#include <algorithm>
#include <array>

#include "core/credentials.hpp"
#include "core/names.hpp"

namespace openshell::providers {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<std::string_view, Type>, 5> kTypes = {{
    {"generic", Type::kGeneric},
    {"github", Type::kGithub},
    {"openai", Type::kOpenAi},
    {"anthropic", Type::kAnthropic},
    {"nvidia", Type::kNvidia},
}};

const std::array<Profile, 5>& profiles() {
  static const std::array<Profile, 5> all = {{
      {Type::kGeneric, {}, "Authorization", "Bearer"},
      {Type::kGithub,
       {"api.github.com", "github.com", "uploads.github.com"},
       "Authorization",
       "Bearer"},
      {Type::kOpenAi, {"api.openai.com"}, "Authorization", "Bearer"},
      {Type::kAnthropic, {"api.anthropic.com"}, "x-api-key", ""},
      {Type::kNvidia, {"integrate.api.nvidia.com"}, "Authorization", "Bearer"},
  }};
  return all;
}

}  // namespace

std::optional<Type> parse_type(std::string_view text) {
  for (const auto& [name, type] : kTypes)
    if (name == text) return type;
  return std::nullopt;
}

std::string_view to_string(Type type) {
  for (const auto& [name, t] : kTypes)
    if (t == type) return name;
  return "generic";
}

const Profile& profile(Type type) {
  for (const auto& p : profiles())
    if (p.type == type) return p;
  return profiles().front();
}

Status validate(const Provider& provider) {
  if (!valid_sandbox_name(provider.name))
    return Error::invalid("provider name '" + provider.name.substr(0, 64) +
                          "': use 1-63 of a-z, 0-9 and '-', starting with a letter or digit");
  if (provider.credentials.empty())
    return Error::invalid("provider " + provider.name + " has no credential");
  if (provider.credentials.size() > kMaxCredentials)
    return Error::invalid("provider " + provider.name + " has more than " +
                          std::to_string(kMaxCredentials) + " credentials");
  for (const auto& [key, value] : provider.credentials) {
    if (!credentials::valid_key(key))
      return Error::invalid("credential key '" + key.substr(0, 64) +
                            "': use letters, digits and '_', not starting with a digit");
    if (value.size() > kMaxValueBytes)
      return Error::invalid("credential " + key + ": longer than " +
                            std::to_string(kMaxValueBytes) + " bytes");
    if (auto st = credentials::valid_secret(value); !st)
      return Error::invalid("credential " + key + ": " + st.error().message());
  }
  return {};
}

std::string to_record(const Provider& provider) {
  json creds = json::object();
  for (const auto& [key, value] : provider.credentials) creds[key] = value;
  return json{{"name", provider.name},
              {"type", std::string(to_string(provider.type))},
              {"credentials", creds}}
      .dump();
}

Result<Provider> from_record(std::string_view record) {
  if (record.size() > (kMaxCredentials + 1) * (kMaxValueBytes + 256))
    return Error::invalid("provider record too large");
  const json parsed = json::parse(record, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object())
    return Error::invalid("provider record is not a JSON object");
  Provider p;
  const auto name = parsed.find("name");
  const auto type = parsed.find("type");
  const auto creds = parsed.find("credentials");
  if (name == parsed.end() || !name->is_string() || type == parsed.end() || !type->is_string() ||
      creds == parsed.end() || !creds->is_object())
    return Error::invalid("provider record lacks name, type or credentials");
  p.name = name->get<std::string>();
  const auto t = parse_type(type->get<std::string>());
  if (!t) return Error::invalid("provider record of an unknown type");
  p.type = *t;
  for (const auto& [key, value] : creds->items()) {
    if (!value.is_string()) return Error::invalid("credential " + key + " is not a string");
    p.credentials[key] = value.get<std::string>();
  }
  if (auto st = validate(p); !st) return st.error();
  return p;
}

nlohmann::json describe(const Provider& provider) {
  json keys = json::array();
  for (const auto& entry : provider.credentials) keys.push_back(entry.first);
  return json{{"name", provider.name},
              {"type", std::string(to_string(provider.type))},
              {"keys", keys},
              {"hosts", profile(provider.type).hosts}};
}

bool bound(const Provider& provider, std::string_view host, uint16_t port,
           const std::optional<std::string>& binding) {
  if (binding) return *binding == provider.name;
  const auto& hosts = profile(provider.type).hosts;
  return port == 443 && std::find(hosts.begin(), hosts.end(), host) != hosts.end();
}

}  // namespace openshell::providers
