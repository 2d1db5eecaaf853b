// The L4 egress decision (DESIGN.md §3 semantics, §4 network model): may this binary open a
// connection to host:port under this policy, and which resolved addresses may the proxy dial?
//
// Two stages, because the proxy resolves names itself and must check what it is about to dial:
//   decide()           before resolution: host spelling, hard blocks, host glob, port, binary;
//   check_addresses()  after resolution: SSRF rules on every address, all or nothing.
// Pure: no resolution, no /proc. The caller supplies the binary chain and the addresses, and
// turns the Decision into a 403 body / reset and an OCSF event.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/cidr.hpp"
#include "core/policy.hpp"

namespace openshell::egress {

struct ConnectRequest {
  // As the client named it (CONNECT target, Host header, SNI or policy-DNS name), without port,
  // not yet normalised.
  std::string host;
  uint16_t port = 0;
  // /proc/PID/exe of the caller, then its ancestors up to the sandbox's main process.
  // Empty = unknown, which fails closed on any rule that lists binaries.
  std::vector<std::string> binary_chain;
};

enum class Verdict { kAllow, kDeny };

enum class DenyReason {
  kNone,
  kNoMatchingPolicy,
  kBinaryNotAllowed,
  kPortNotAllowed,
  kInvalidHost,
  kNumericHost,
  kAlwaysBlockedAddress,
  kPrivateAddress,
  kNotInAllowedIps,
  kControlPlanePort,
  kUnknownBinary,
  kEmptyPolicy,
  // The name a connection claims (TLS SNI, HTTP Host) is not the one it was allowed for: a
  // tunnel's CONNECT host, or the name our DNS gave for a captured destination.
  kNameMismatch,
  // Not a policy's: the agent refused the TLS handshake with the sandbox CA's certificate (a
  // client with a trust store of its own, or pinning), so an inspected connection could not be.
  kTlsRefused,
};

struct Decision {
  Verdict verdict = Verdict::kDeny;
  // enforcement = "audit" on the matched endpoint turned a port/binary deny into an allow: the
  // caller lets it through and logs it. `reason` and `reason_text` then say what would have been
  // denied.
  bool audit_only = false;
  DenyReason reason = DenyReason::kNone;
  // For an agent to act on, e.g. "binary /usr/bin/python3.11 not allowed by any rule for
  // api.github.com:443 (ancestors: /bin/sh)". Untrusted bytes in it are escaped.
  std::string reason_text;
  // The network_policies key that decided (the smallest name when several match); empty when no
  // rule was involved.
  std::string rule;
  // The matched endpoint; valid while the Policy lives. Set on every allow and kept on a stage-2
  // deny; null on a stage-1 deny.
  const policy::Endpoint* endpoint = nullptr;
  // Normalised host (empty when the host was invalid).
  std::string host;
};

// Stage 1, before resolution. Order: host spelling and hard blocks (invalid, numeric trick,
// always-blocked literal or name), empty policy, then endpoint match (host, port, binary).
[[nodiscard]] Decision decide(const policy::Policy& policy, const ConnectRequest& request);

// Stage 2, after the proxy resolved stage1.host (for an IP literal: the literal itself).
// A denied stage1 is returned as it is. Every address must pass, or the whole request is denied
// (DNS rebinding defence); on allow `dial` (if not null) receives the addresses to dial, in order,
// without duplicates, and on deny it is cleared.
//   always_blocked -> deny, whatever the policy says;
//   allowed_ips set on the endpoint -> every address must be inside it;
//   otherwise a non-public address passes only for an exact declared host (which includes an IP
//   literal the rule names);
//   control-plane ports -> denied when the endpoint has allowed_ips or a non-public address was
//   let through.
[[nodiscard]] Decision check_addresses(const Decision& stage1,
                                       const std::vector<IpAddress>& resolved, uint16_t port,
                                       std::vector<IpAddress>* dial);

// Stable snake_case code per reason, for events and the `reason` field of a 403 body:
// "policy_denied", "binary_not_allowed", "ssrf_denied", ...
[[nodiscard]] std::string_view to_string(DenyReason reason);

// OpenShell's coarse 403 `error` field: "ssrf_denied" for the address and numeric-host guards,
// "policy_denied" for everything else ("" for kNone).
[[nodiscard]] std::string_view error_class(DenyReason reason);

}  // namespace openshell::egress
