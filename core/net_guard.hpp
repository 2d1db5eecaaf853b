// SSRF guard for the egress proxy (DESIGN.md §4 "SSRF"): what kind of address a destination is,
// which addresses no policy may open, and whether a host as a client spelled it is a name, an
// address, or a spelling meant to smuggle an address past a name check.
//
// Pure functions: no resolution, no sockets. The proxy resolves names itself and feeds every
// answer through classify()/always_blocked() before dialling (core/egress.hpp does the policy
// side of that).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/cidr.hpp"
#include "core/result.hpp"

namespace openshell::net {

// Special-purpose ranges (IANA IPv4/IPv6 special-purpose registries). Everything that is not
// kPublic is refused unless the policy opens it explicitly (allowed_ips, an exact declared host),
// and the first three are refused even then (always_blocked()).
enum class AddressClass : uint8_t {
  kPublic,
  kLoopback,       // 127/8, ::1
  kLinkLocal,      // 169.254/16 (cloud metadata lives here), fe80::/10
  kUnspecified,    // 0/8 ("this network"), ::
  kPrivate,        // 10/8, 172.16/12, 192.168/16
  kCarrierNat,     // 100.64/10
  kIetfProtocol,   // 192.0.0/24, 2001::/23 (protocol assignments: DS-Lite, Teredo, ORCHID...)
  kBenchmark,      // 198.18/15, 2001:2::/48
  kDocumentation,  // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
  kMulticast,      // 224/4, ff00::/8
  kBroadcast,      // 255.255.255.255
  kReserved,       // 240/4, 192.88.99/24, 100::/64, fec0::/10, and IPv6 outside 2000::/3
  kUniqueLocal,    // fc00::/7
};

// IPv6 forms that carry an IPv4 address are classified as that IPv4 address: v4-mapped
// (::ffff:a.b.c.d), v4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48),
// because a dual-stack socket, a NAT64 gateway or a 6to4 relay ends up at that IPv4 host.
[[nodiscard]] AddressClass classify(const IpAddress& ip);

// "loopback", "link-local", "carrier-grade NAT", ... for reason texts.
[[nodiscard]] std::string_view to_string(AddressClass c);

// Loopback, link-local (incl. 169.254.169.254) and unspecified, in any spelling. Denied even when
// a rule names the address or allowed_ips covers it: these reach the supervisor's own host.
[[nodiscard]] bool always_blocked(const IpAddress& ip);

// Host-internal control planes (etcd, Kubernetes API, kubelet): never reachable through a path
// that opens private addresses.
inline constexpr std::array<uint16_t, 5> kControlPlanePorts = {2379, 2380, 6443, 10250, 10255};
[[nodiscard]] bool is_control_plane_port(uint16_t port);

enum class HostForm : uint8_t {
  kName,          // a DNS name: lower-case, labels of [a-z0-9_-]
  kIpLiteral,     // a canonical dotted quad, or an IPv6 literal (bracketed or bare)
  kNumericTrick,  // ends in a number but is no canonical dotted quad: "2130706433", "127.1",
                  // "0x7f.0.0.1", "0177.0.0.1"; some resolvers and URL parsers read it as an
                  // address
  kInvalid,       // anything else a name can never be
};

struct HostCheck {
  HostForm form = HostForm::kInvalid;
  // Normalised: lower-case, one trailing dot stripped, IPv6 without brackets in inet_ntop's
  // canonical text. Empty when form is kInvalid.
  std::string host;
  // kIpLiteral: the address.
  std::optional<IpAddress> ip;
  // kNumericTrick: the address an inet_aton-style parser would read, when there is one.
  std::optional<IpAddress> reads_as;
  // kInvalid / kNumericTrick: why, as a lower-case phrase ("contains a control character").
  std::string problem;
};

// For a host taken from a CONNECT line, a Host header, a URL authority or an SNI, without port.
[[nodiscard]] HostCheck check_host(std::string_view raw);

// Names that reach the supervisor's host or a cloud metadata service whatever they resolve to:
// "localhost", "*.localhost" (RFC 6761 reserves them for loopback), "metadata.google.internal".
// `host` must be normalised (HostCheck::host).
[[nodiscard]] bool is_blocked_name(std::string_view host);

// "host:port" or "[v6]:port" from a CONNECT target or a URL's or Host header's authority (the
// brackets kept); `default_port` when it names none. False when it is not one: an empty host, a
// port that is not 1-65535.
bool split_authority(std::string_view authority, std::string* host, uint16_t* port,
                     uint16_t default_port);

// The operator's own egress proxy (openshelld.toml upstream_proxy, the supervisor's
// --upstream-proxy): allowed connections are dialed through it with CONNECT, every decision
// still the sandbox proxy's.
struct UpstreamProxy {
  std::string host;  // a name or an address (IPv6 without brackets)
  uint16_t port = 0;
};
// "http://HOST:PORT" (PORT defaults to 80); anything else (https://, credentials, a path) is an
// error that says what is supported.
Result<UpstreamProxy> parse_upstream_proxy(std::string_view url);

}  // namespace openshell::net
