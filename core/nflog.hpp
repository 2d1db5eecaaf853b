// Packets the sandbox's firewall refused, as the kernel's NFLOG (nfnetlink_log) reports them:
// the parser for what a netlink socket bound to the log group receives. Pure code, no I/O (the
// socket is sys/nflog); everything in the input is untrusted and bounds-checked.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/cidr.hpp"

namespace openshell::nflog {

struct RefusedPacket {
  uint8_t protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ...
  IpAddress src;
  IpAddress dst;
  uint16_t src_port = 0;  // TCP and UDP only
  uint16_t dst_port = 0;
  std::optional<uint32_t> uid;  // of the sending socket, when the kernel knew it
};

// "tcp", "udp", "icmp", "icmpv6" or the number.
std::string protocol_name(uint8_t protocol);

// Every NFLOG packet message in one datagram from the log socket, in order. Messages of other
// types, packets whose payload is not an IPv4/IPv6 header the parser can read, and anything
// truncated are skipped; it never reads past `data`.
std::vector<RefusedPacket> parse_messages(std::span<const uint8_t> data);

}  // namespace openshell::nflog
