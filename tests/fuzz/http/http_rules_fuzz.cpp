// libFuzzer target: a request head -> the L7 decision (core/http_rules.hpp). The head is split
// here only to drive the pure functions the way the supervisor will after Boost.Beast parsed
// it: the raw bytes to check_head_bytes, the fields to check_framing, the target to canonicalize
// and parse_query, the request to evaluate against a fixed endpoint. It must never crash; a
// canonical path must be canonical (no empty, "." or ".." segment; canonicalising it again
// changes nothing); and a path that a deny rule covers is never allowed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/http_rules.hpp"

namespace {

const openshell::policy::Endpoint& endpoint() {
  static const openshell::policy::Endpoint ep = [] {
    auto parsed = openshell::policy::parse_policy_string(
        "version = 1\n[network_policies.r]\n[[network_policies.r.endpoints]]\n"
        "host = \"api.example.com\"\nport = 443\nprotocol = \"rest\"\n"
        "rules = [{ allow = { method = \"GET\", path = \"/repos/**\" } },\n"
        "  { allow = { method = \"POST\", path = \"/s\", query = { q = \"a*\" } } }]\n"
        "deny_rules = [{ method = \"*\", path = \"/repos/secret/**\" }]\n",
        "fuzz.toml", openshell::policy::ParseOptions{.l7 = true});
    if (!parsed.ok()) std::abort();
    return parsed.policy->network_policies.at("r").endpoints.at(0);
  }();
  return ep;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace l7 = openshell::l7;
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  (void)l7::check_head_bytes(head);

  // Request line, then "name: value" lines, up to the blank line.
  const size_t line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return 0;
  const std::string method(request_line.substr(0, sp1));
  const std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  l7::Fields fields;
  for (size_t at = line_end == std::string_view::npos ? head.size() : line_end + 2;
       at < head.size();) {
    size_t end = head.find("\r\n", at);
    if (end == std::string_view::npos) end = head.size();
    const std::string_view line = head.substr(at, end - at);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    fields.emplace_back(std::string(line.substr(0, colon)),
                        colon == std::string_view::npos ? "" : std::string(line.substr(colon + 1)));
    at = end + 2;
  }
  (void)l7::check_framing(fields);

  for (const bool allow_slash : {false, true}) {
    auto canonical = l7::canonicalize(target, allow_slash);
    if (!canonical) continue;
    const std::string& path = canonical->path;
    if (path.empty() || path.front() != '/') std::abort();
    if (path.find("//") != std::string::npos || path.find("/./") != std::string::npos ||
        path.find("/../") != std::string::npos || path.ends_with("/.") || path.ends_with("/.."))
      std::abort();
    auto again = l7::canonicalize(path, allow_slash);
    if (!again || again->path != path) std::abort();
    auto query = l7::parse_query(canonical->query);
    if (!query) continue;
    const auto decision = l7::evaluate(endpoint(), l7::Request{method, path, *query});
    if (decision.allowed && path.starts_with("/repos/secret/")) std::abort();
    if (decision.audit_only) std::abort();  // this endpoint enforces
  }
  return 0;
}
