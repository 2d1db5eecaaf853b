#include "core/nflog.hpp"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

namespace openshell::nflog {
namespace {

uint16_t read_u16(const uint8_t* p) {  // host order
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint16_t read_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// The IP packet at the start of an NFLOG payload: its addresses, protocol and ports.
std::optional<RefusedPacket> parse_ip(std::span<const uint8_t> ip) {
  RefusedPacket out;
  size_t l4 = 0;
  if (ip.size() >= 20 && (ip[0] >> 4) == 4) {
    const size_t header = static_cast<size_t>(ip[0] & 0x0f) * 4;
    if (header < 20 || header > ip.size()) return std::nullopt;
    out.protocol = ip[9];
    std::memcpy(out.src.bytes.data(), &ip[12], 4);
    std::memcpy(out.dst.bytes.data(), &ip[16], 4);
    l4 = header;
  } else if (ip.size() >= 40 && (ip[0] >> 4) == 6) {
    out.src.v6 = out.dst.v6 = true;
    out.protocol = ip[6];  // extension headers are not followed: the ports stay 0
    std::memcpy(out.src.bytes.data(), &ip[8], 16);
    std::memcpy(out.dst.bytes.data(), &ip[24], 16);
    l4 = 40;
  } else {
    return std::nullopt;
  }
  if ((out.protocol == IPPROTO_TCP || out.protocol == IPPROTO_UDP) && ip.size() >= l4 + 4) {
    out.src_port = read_be16(&ip[l4]);
    out.dst_port = read_be16(&ip[l4 + 2]);
  }
  return out;
}

}  // namespace

std::string protocol_name(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_ICMPV6:
      return "icmpv6";
    default:
      return std::to_string(protocol);
  }
}

std::vector<RefusedPacket> parse_messages(std::span<const uint8_t> data) {
  std::vector<RefusedPacket> out;
  constexpr uint16_t kPacketType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
  size_t at = 0;
  while (at < data.size() && data.size() - at >= sizeof(nlmsghdr)) {
    nlmsghdr header;
    std::memcpy(&header, &data[at], sizeof header);
    if (header.nlmsg_len < sizeof(nlmsghdr) || header.nlmsg_len > data.size() - at) break;
    const std::span<const uint8_t> message = data.subspan(at, header.nlmsg_len);
    at += NLMSG_ALIGN(header.nlmsg_len);
    if (header.nlmsg_type != kPacketType) continue;
    // nfgenmsg (4 bytes), then attributes.
    size_t attr = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
    std::optional<RefusedPacket> packet;
    std::optional<uint32_t> uid;
    while (attr + NLA_HDRLEN <= message.size()) {
      const uint16_t len = read_u16(&message[attr]);
      const uint16_t type = read_u16(&message[attr + 2]) & NLA_TYPE_MASK;
      if (len < NLA_HDRLEN || len > message.size() - attr) break;
      const std::span<const uint8_t> value = message.subspan(attr + NLA_HDRLEN, len - NLA_HDRLEN);
      if (type == NFULA_PAYLOAD) packet = parse_ip(value);
      if (type == NFULA_UID && value.size() >= 4) uid = read_be32(value.data());
      attr += NLA_ALIGN(len);
    }
    if (packet) {
      packet->uid = uid;
      out.push_back(*packet);
    }
  }
  return out;
}

}  // namespace openshell::nflog
