// IP address literals and CIDR blocks, for `allowed_ips` in the policy and for the proxy's SSRF
// guard. Parsing goes through inet_pton, so only the canonical spellings count as addresses:
// "127.1", "2130706433" and "0x7f000001" are NOT addresses here, even though inet_aton and some
// URL parsers accept them. A caller that sees such a host name must treat it as a name (which the
// policy DNS will refuse), never quietly as an address.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace openshell {

// One IPv4 or IPv6 address. An IPv4 address occupies bytes [0, 4) of `bytes`; the other twelve
// are zero. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) stays IPv6 here; contains() and
// overlaps() treat it as the IPv4 address it carries (see there).
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// Strict: a dotted quad with four decimal parts and no leading zeros, or an RFC 4291 IPv6 text
// form. No brackets, no zone id ("%eth0"), no surrounding whitespace.
[[nodiscard]] Result<IpAddress> parse_ip(std::string_view text);
[[nodiscard]] std::string to_string(const IpAddress& ip);

// An address block. IPv4 blocks store the network in addr[0..4) with the rest zero, and
// prefix <= 32; IPv6 blocks use all sixteen bytes and prefix <= 128.
// Bits beyond the prefix are always zero: parse_cidr clears them ("10.1.2.3/8" reads as
// "10.0.0.0/8"), so two Cidr values that cover the same block compare equal.
struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};
  uint8_t prefix = 0;

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// "10.0.0.0/8", "fd00::/8", or a bare address ("192.168.1.5" is /32, "::1" is /128).
// Host bits set beyond the prefix are accepted and cleared, as OpenShell's parser does, so its
// policies carry over unchanged.
[[nodiscard]] Result<Cidr> parse_cidr(std::string_view text);
[[nodiscard]] std::string to_string(const Cidr& cidr);

// IPv4 and IPv6 are compared in one address space: an IPv4 block a.b.c.d/p is the IPv6 block
// ::ffff:a.b.c.d/(96+p). So 127.0.0.0/8 contains ::ffff:127.0.0.1 and overlaps ::ffff:0:0/96,
// which is what an SSRF check needs: a v4-mapped address reaches the v4 host on a dual-stack
// socket.
[[nodiscard]] bool contains(const Cidr& block, const IpAddress& ip);
[[nodiscard]] bool contains(const Cidr& outer, const Cidr& inner);
[[nodiscard]] bool overlaps(const Cidr& a, const Cidr& b);

}  // namespace openshell
