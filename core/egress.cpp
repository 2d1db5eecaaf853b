// Decisions the design leaves open, made here:
// - Host spelling and hard blocks come before the empty-policy check: an invalid host, a numeric
//   trick or an always-blocked literal is reported as such under any policy.
// - "localhost", "*.localhost" and "metadata.google.internal" are always blocked by name (they
//   reach the supervisor's host or a metadata service whatever they resolve to).
// - Host globs never match IP literals; a rule names an address only exactly ("10.0.0.5") or
//   through a hostless endpoint's allowed_ips. A hostless endpoint never matches a DNS name.
// - Deny reason precedence when no endpoint allows: binary (a rule covers host:port but not the
//   caller) over port (a rule covers the host only) over no match; `rule` is the smallest rule
//   name that produced the reported reason.
// - On an audit allow, `reason`/`reason_text` keep the deny that was waived and `rule`/`endpoint`
//   name the (smallest) audit endpoint whose host matched.
// - Stage 2 with no addresses denies (kInvalidHost): nothing was checked, so nothing may be
// dialled.
// - Control-plane ports are denied on an endpoint with allowed_ips for any address, and elsewhere
//   when a non-public address was let through (exact declared host or named literal); a public
//   destination on a plain host endpoint keeps its port.
#include "core/egress.hpp"

#include <algorithm>

#include "core/host_glob.hpp"
#include "core/net_guard.hpp"
#include "core/path_glob.hpp"

namespace openshell::egress {
namespace {

// Bounds on what a reason text repeats back, so a deep process tree or a long rule list cannot
// make one 403 body large.
constexpr size_t kMaxShownText = 256;
constexpr size_t kMaxShownAncestors = 8;
constexpr size_t kMaxShownBinaries = 8;
constexpr size_t kMaxShownPorts = 16;

// Binary paths and raw hosts come from inside the sandbox: escape control bytes (log injection)
// and non-ASCII bytes (a JSON encoder rejects invalid UTF-8), and cap the length.
std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : s) {
    if (out.size() >= kMaxShownText) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '\\') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

std::string host_port(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool is_glob(const std::string& host) { return host.find('*') != std::string::npos; }

bool host_matches(const policy::Endpoint& ep, const net::HostCheck& hc) {
  if (!ep.host) {
    return hc.form == net::HostForm::kIpLiteral &&
           std::any_of(ep.allowed_ips.begin(), ep.allowed_ips.end(),
                       [&hc](const Cidr& block) { return contains(block, *hc.ip); });
  }
  if (hc.form == net::HostForm::kIpLiteral) return !is_glob(*ep.host) && *ep.host == hc.host;
  if (hc.form != net::HostForm::kName) return false;
  if (!is_glob(*ep.host)) return *ep.host == hc.host;
  auto pattern = policy::HostPattern::parse(*ep.host);
  return pattern.ok() && pattern->matches(hc.host);
}

bool port_allowed(const policy::Endpoint& ep, uint16_t port) {
  return std::find(ep.ports.begin(), ep.ports.end(), port) != ep.ports.end();
}

// The exe or any ancestor's exe; argv never reaches here.
bool binary_allowed(const policy::NetworkRule& rule, const std::vector<std::string>& chain) {
  if (rule.binaries.empty()) return true;
  return std::any_of(chain.begin(), chain.end(), [&rule](const std::string& exe) {
    return std::any_of(rule.binaries.begin(), rule.binaries.end(), [&exe](const policy::Binary& b) {
      return policy::glob_matches(b.path, exe, policy::GlobSyntax::kSegments);
    });
  });
}

std::string ancestors_text(const std::vector<std::string>& chain) {
  if (chain.size() <= 1) return "no ancestors";
  std::string out = "ancestors: ";
  for (size_t i = 1; i < chain.size(); ++i) {
    if (i > kMaxShownAncestors) {
      out += ", ... (" + std::to_string(chain.size() - i) + " more)";
      break;
    }
    if (i > 1) out += ", ";
    out += printable(chain[i]);
  }
  return out;
}

// "python3.11" -> "python3", "node18" -> "node": the name a policy author likely wrote, whose
// symlink the kernel resolved away. Empty when the name does not look like that.
std::string unversioned_sibling(std::string_view path) {
  const size_t slash = path.rfind('/');
  const std::string_view dir = path.substr(0, slash == std::string_view::npos ? 0 : slash + 1);
  const std::string_view base = path.substr(dir.size());
  size_t i = 0;
  while (i < base.size() &&
         ((base[i] >= 'a' && base[i] <= 'z') || (base[i] >= 'A' && base[i] <= 'Z')))
    ++i;
  const size_t letters = i;
  if (letters < 2) return {};
  if (i < base.size() && base[i] == '-') ++i;
  const size_t version = i;
  if (version >= base.size()) return {};
  bool digit_before = false;
  for (; i < base.size(); ++i) {
    const char c = base[i];
    if (c >= '0' && c <= '9') {
      digit_before = true;
    } else if (c == '.' && digit_before) {
      digit_before = false;
    } else {
      return {};
    }
  }
  if (!digit_before) return {};  // ends in '.'
  const size_t last_dot = base.rfind('.');
  if (last_dot != std::string_view::npos && last_dot > version) {
    return std::string(dir) + std::string(base.substr(0, last_dot));
  }
  return std::string(dir) + std::string(base.substr(0, letters));
}

std::string binaries_text(const std::vector<const policy::NetworkRule*>& rules) {
  std::string out;
  size_t shown = 0;
  for (const policy::NetworkRule* rule : rules) {
    if (!out.empty()) out += "; ";
    out += "rule " + rule->name + " allows ";
    for (size_t i = 0; i < rule->binaries.size(); ++i) {
      if (shown++ >= kMaxShownBinaries) {
        out += "...";
        return out;
      }
      if (i > 0) out += ", ";
      out += printable(rule->binaries[i].path);
    }
  }
  return out;
}

Decision deny(Decision d, DenyReason reason, std::string text) {
  d.verdict = Verdict::kDeny;
  d.audit_only = false;
  d.reason = reason;
  d.reason_text = std::move(text);
  return d;
}

std::string caller_text(const std::vector<std::string>& chain) {
  return chain.empty() ? std::string("unknown binary") : "binary " + printable(chain.front());
}

}  // namespace

Decision decide(const policy::Policy& policy, const ConnectRequest& request) {
  Decision d;
  const net::HostCheck hc = net::check_host(request.host);
  d.host = hc.host;

  switch (hc.form) {
    case net::HostForm::kInvalid:
      return deny(std::move(d), DenyReason::kInvalidHost,
                  "host '" + printable(request.host) + "' " + hc.problem + "; denied");
    case net::HostForm::kNumericTrick:
      return deny(std::move(d), DenyReason::kNumericHost,
                  "host '" + hc.host + "' " + hc.problem +
                      "; numeric host spellings are always denied (use a DNS name or the "
                      "canonical dotted quad)");
    case net::HostForm::kIpLiteral:
      if (net::always_blocked(*hc.ip)) {
        return deny(std::move(d), DenyReason::kAlwaysBlockedAddress,
                    host_port(hc.host, request.port) + " is an always-blocked " +
                        std::string(net::to_string(net::classify(*hc.ip))) +
                        " address; no policy can allow it");
      }
      break;
    case net::HostForm::kName:
      if (net::is_blocked_name(hc.host)) {
        return deny(std::move(d), DenyReason::kAlwaysBlockedAddress,
                    host_port(hc.host, request.port) +
                        " names the sandbox host or a metadata service and is always blocked; "
                        "no policy can allow it");
      }
      break;
  }

  const std::string target = host_port(hc.host, request.port);
  if (policy.network_policies.empty()) {
    return deny(std::move(d), DenyReason::kEmptyPolicy,
                "the policy has no network_policies, so all egress is denied (" +
                    caller_text(request.binary_chain) + " to " + target + ")");
  }

  struct Hit {
    const policy::NetworkRule* rule = nullptr;
    const policy::Endpoint* endpoint = nullptr;
  };
  Hit allowed;
  Hit port_hit;    // host matched, port did not
  Hit binary_hit;  // host and port matched, binary did not
  Hit audit_hit;   // host matched on an audit endpoint
  std::vector<const policy::NetworkRule*> binary_rules;
  std::vector<uint16_t> host_ports;

  for (const auto& [name, rule] : policy.network_policies) {
    int binary_ok = -1;  // computed once per rule, on the first endpoint that needs it
    for (const policy::Endpoint& ep : rule.endpoints) {
      if (!host_matches(ep, hc)) continue;
      if (ep.enforcement == policy::Enforcement::kAudit && audit_hit.rule == nullptr) {
        audit_hit = {&rule, &ep};
      }
      if (!port_allowed(ep, request.port)) {
        if (port_hit.rule == nullptr) port_hit = {&rule, &ep};
        host_ports.insert(host_ports.end(), ep.ports.begin(), ep.ports.end());
        continue;
      }
      if (binary_ok < 0) binary_ok = binary_allowed(rule, request.binary_chain) ? 1 : 0;
      if (binary_ok == 1) {
        allowed = {&rule, &ep};
        break;
      }
      if (binary_hit.rule == nullptr) binary_hit = {&rule, &ep};
      if (binary_rules.empty() || binary_rules.back() != &rule) binary_rules.push_back(&rule);
    }
    if (allowed.rule != nullptr) break;  // the map is ordered: this is the smallest rule name
  }

  if (allowed.rule != nullptr) {
    d.verdict = Verdict::kAllow;
    d.rule = allowed.rule->name;
    d.endpoint = allowed.endpoint;
    return d;
  }

  if (binary_hit.rule != nullptr) {
    d.rule = binary_hit.rule->name;
    if (request.binary_chain.empty()) {
      d = deny(std::move(d), DenyReason::kUnknownBinary,
               "calling binary unknown (its /proc/PID/exe could not be read), and every rule for " +
                   target + " lists binaries (" + binaries_text(binary_rules) +
                   "); denied (fail closed)");
    } else {
      std::string text = caller_text(request.binary_chain) + " not allowed by any rule for " +
                         target + " (" + ancestors_text(request.binary_chain) + "); " +
                         binaries_text(binary_rules);
      if (const std::string sibling = unversioned_sibling(request.binary_chain.front());
          !sibling.empty()) {
        text += "; hint: " + printable(request.binary_chain.front()) +
                " looks like a versioned interpreter: if the policy lists the symlink " +
                printable(sibling) + ", check that it resolves to this file, or list " +
                printable(request.binary_chain.front()) + " itself";
      }
      d = deny(std::move(d), DenyReason::kBinaryNotAllowed, std::move(text));
    }
  } else if (port_hit.rule != nullptr) {
    d.rule = port_hit.rule->name;
    std::sort(host_ports.begin(), host_ports.end());
    host_ports.erase(std::unique(host_ports.begin(), host_ports.end()), host_ports.end());
    std::string ports;
    for (size_t i = 0; i < host_ports.size(); ++i) {
      if (i == kMaxShownPorts) {
        ports += ", ...";
        break;
      }
      if (i > 0) ports += ", ";
      ports += std::to_string(host_ports[i]);
    }
    d = deny(std::move(d), DenyReason::kPortNotAllowed,
             "port " + std::to_string(request.port) + " not allowed for " + hc.host +
                 " (rules for this host allow ports " + ports + ")");
  } else {
    return deny(std::move(d), DenyReason::kNoMatchingPolicy,
                "no matching policy: no rule allows " + target + " (" +
                    caller_text(request.binary_chain) + ")");
  }

  if (audit_hit.rule != nullptr) {
    // enforcement = "audit": the waived deny stays in reason/reason_text for the event.
    d.verdict = Verdict::kAllow;
    d.audit_only = true;
    d.rule = audit_hit.rule->name;
    d.endpoint = audit_hit.endpoint;
    d.reason_text += " (allowed: enforcement = audit on rule " + audit_hit.rule->name + ")";
  }
  return d;
}

Decision check_addresses(const Decision& stage1, const std::vector<IpAddress>& resolved,
                         uint16_t port, std::vector<IpAddress>* dial) {
  if (dial != nullptr) dial->clear();
  if (stage1.verdict != Verdict::kAllow) return stage1;
  if (stage1.endpoint == nullptr) {
    return deny(stage1, DenyReason::kNoMatchingPolicy, "no endpoint to check addresses against");
  }
  const std::string target = host_port(stage1.host, port);
  if (resolved.empty()) {
    return deny(stage1, DenyReason::kInvalidHost, target + " resolved to no address; denied");
  }
  // Before anything else, so one bad answer condemns the whole set (DNS rebinding).
  for (const IpAddress& ip : resolved) {
    if (net::always_blocked(ip)) {
      return deny(stage1, DenyReason::kAlwaysBlockedAddress,
                  target + " resolves to always-blocked address " + to_string(ip) + " (" +
                      std::string(net::to_string(net::classify(ip))) + "); no policy can allow it");
    }
  }

  const policy::Endpoint& ep = *stage1.endpoint;
  const bool exact_host = ep.host.has_value() && !is_glob(*ep.host);
  bool opened_private = false;
  for (const IpAddress& ip : resolved) {
    const net::AddressClass cls = net::classify(ip);
    if (!ep.allowed_ips.empty()) {
      const bool inside = std::any_of(ep.allowed_ips.begin(), ep.allowed_ips.end(),
                                      [&ip](const Cidr& block) { return contains(block, ip); });
      if (!inside) {
        std::string blocks;
        for (size_t i = 0; i < ep.allowed_ips.size() && i < kMaxShownPorts; ++i) {
          if (i > 0) blocks += ", ";
          blocks += to_string(ep.allowed_ips[i]);
        }
        return deny(stage1, DenyReason::kNotInAllowedIps,
                    target + " resolves to " + to_string(ip) + ", not in allowed_ips (" + blocks +
                        ") of rule " + stage1.rule + "; allowed_ips check failed");
      }
      if (cls != net::AddressClass::kPublic) opened_private = true;
      continue;
    }
    if (cls == net::AddressClass::kPublic) continue;
    if (!exact_host) {
      return deny(stage1, DenyReason::kPrivateAddress,
                  target + " resolves to " + to_string(ip) + ", a " +
                      std::string(net::to_string(cls)) + " address; rule " + stage1.rule +
                      " reaches non-public addresses only through allowed_ips or an exact host "
                      "(not a wildcard)");
    }
    opened_private = true;
  }

  if (net::is_control_plane_port(port) && (!ep.allowed_ips.empty() || opened_private)) {
    return deny(stage1, DenyReason::kControlPlanePort,
                "port " + std::to_string(port) +
                    " is a blocked control-plane port (etcd, Kubernetes API, kubelet) for "
                    "private or allowed_ips destinations (" +
                    target + ")");
  }

  if (dial != nullptr) {
    for (const IpAddress& ip : resolved) {
      if (std::find(dial->begin(), dial->end(), ip) == dial->end()) dial->push_back(ip);
    }
  }
  return stage1;
}

std::string_view to_string(DenyReason reason) {
  switch (reason) {
    case DenyReason::kNone:
      return "none";
    case DenyReason::kNoMatchingPolicy:
      return "policy_denied";
    case DenyReason::kBinaryNotAllowed:
      return "binary_not_allowed";
    case DenyReason::kPortNotAllowed:
      return "port_not_allowed";
    case DenyReason::kInvalidHost:
      return "invalid_host";
    case DenyReason::kNumericHost:
      return "numeric_host";
    case DenyReason::kAlwaysBlockedAddress:
      return "ssrf_denied";
    case DenyReason::kPrivateAddress:
      return "private_address";
    case DenyReason::kNotInAllowedIps:
      return "not_in_allowed_ips";
    case DenyReason::kControlPlanePort:
      return "control_plane_port";
    case DenyReason::kUnknownBinary:
      return "unknown_binary";
    case DenyReason::kEmptyPolicy:
      return "empty_policy";
    case DenyReason::kNameMismatch:
      return "name_mismatch";
    case DenyReason::kTlsRefused:
      return "tls_refused";
  }
  return "unknown";
}

std::string_view error_class(DenyReason reason) {
  switch (reason) {
    case DenyReason::kNone:
      return "";
    case DenyReason::kNumericHost:
    case DenyReason::kAlwaysBlockedAddress:
    case DenyReason::kPrivateAddress:
    case DenyReason::kNotInAllowedIps:
    case DenyReason::kControlPlanePort:
      return "ssrf_denied";
    case DenyReason::kNoMatchingPolicy:
    case DenyReason::kBinaryNotAllowed:
    case DenyReason::kPortNotAllowed:
    case DenyReason::kInvalidHost:
    case DenyReason::kUnknownBinary:
    case DenyReason::kEmptyPolicy:
    case DenyReason::kNameMismatch:
      return "policy_denied";
    case DenyReason::kTlsRefused:
      return "tls_refused";
  }
  return "policy_denied";
}

}  // namespace openshell::egress
