#include "core/nflog.hpp"

#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using openshell::nflog::parse_messages;
using openshell::nflog::protocol_name;

namespace {

using Bytes = std::vector<uint8_t>;

void put_attr(Bytes* b, uint16_t type, const Bytes& value) {
  nlattr a{};
  a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + value.size());
  a.nla_type = type;
  const size_t at = b->size();
  b->resize(at + NLA_ALIGN(a.nla_len), 0);
  std::memcpy(b->data() + at, &a, sizeof a);
  std::memcpy(b->data() + at + NLA_HDRLEN, value.data(), value.size());
}

// One NFULNL_MSG_PACKET message as the kernel sends it, around `payload`.
Bytes message(const Bytes& payload, uint32_t uid = 1000,
              uint16_t type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) {
  Bytes attrs;
  put_attr(&attrs, NFULA_PACKET_HDR, {0x08, 0x00, 3, 0});
  put_attr(&attrs, NFULA_PAYLOAD, payload);
  const uint32_t be_uid = htonl(uid);
  Bytes uid_bytes(4);
  std::memcpy(uid_bytes.data(), &be_uid, 4);
  put_attr(&attrs, NFULA_UID, uid_bytes);
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)) + attrs.size());
  h.nlmsg_type = type;
  const size_t head = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  Bytes out(head + attrs.size(), 0);
  std::memcpy(out.data(), &h, sizeof h);
  out[NLMSG_HDRLEN] = AF_INET;
  std::memcpy(out.data() + head, attrs.data(), attrs.size());
  return out;
}

Bytes ipv4(uint8_t protocol, const char* src, const char* dst, uint16_t sport, uint16_t dport) {
  Bytes p(28, 0);
  p[0] = 0x45;
  p[9] = protocol;
  inet_pton(AF_INET, src, &p[12]);
  inet_pton(AF_INET, dst, &p[16]);
  p[20] = static_cast<uint8_t>(sport >> 8);
  p[21] = static_cast<uint8_t>(sport);
  p[22] = static_cast<uint8_t>(dport >> 8);
  p[23] = static_cast<uint8_t>(dport);
  return p;
}

}  // namespace

TEST_CASE("nflog: refused IPv4 UDP and TCP packets are read with ports and uid") {
  Bytes data = message(ipv4(IPPROTO_UDP, "10.200.0.1", "8.8.8.8", 40000, 123));
  const Bytes second = message(ipv4(IPPROTO_TCP, "10.200.0.1", "192.0.2.1", 50000, 443), 7);
  data.insert(data.end(), second.begin(), second.end());
  auto packets = parse_messages(data);
  REQUIRE(packets.size() == 2);
  CHECK(packets[0].protocol == IPPROTO_UDP);
  CHECK(to_string(packets[0].src) == "10.200.0.1");
  CHECK(to_string(packets[0].dst) == "8.8.8.8");
  CHECK(packets[0].src_port == 40000);
  CHECK(packets[0].dst_port == 123);
  CHECK(packets[0].uid == 1000U);
  CHECK(packets[1].protocol == IPPROTO_TCP);
  CHECK(to_string(packets[1].dst) == "192.0.2.1");
  CHECK(packets[1].dst_port == 443);
  CHECK(packets[1].uid == 7U);
}

TEST_CASE("nflog: IPv6 and ICMP packets; ports only for TCP and UDP") {
  Bytes v6(44, 0);
  v6[0] = 0x60;
  v6[6] = IPPROTO_UDP;
  inet_pton(AF_INET6, "fd00::1", &v6[8]);
  inet_pton(AF_INET6, "2001:db8::53", &v6[24]);
  v6[42] = 0x01;
  v6[43] = 0xbb;
  auto packets = parse_messages(message(v6));
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].dst.v6);
  CHECK(to_string(packets[0].dst) == "2001:db8::53");
  CHECK(packets[0].dst_port == 443);

  auto icmp = parse_messages(message(ipv4(IPPROTO_ICMP, "10.200.0.1", "1.1.1.1", 0x0800, 1)));
  REQUIRE(icmp.size() == 1);
  CHECK(icmp[0].dst_port == 0);
  CHECK(protocol_name(icmp[0].protocol) == "icmp");
  CHECK(protocol_name(IPPROTO_UDP) == "udp");
  CHECK(protocol_name(200) == "200");
}

TEST_CASE("nflog: other messages, bad payloads and truncation are skipped without over-reading") {
  // Not a packet message (a config ack, say).
  CHECK(parse_messages(message(ipv4(IPPROTO_UDP, "1.2.3.4", "5.6.7.8", 1, 2), 0,
                               (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG))
            .empty());
  // A payload that is no IP header, and an IPv4 header whose IHL points past the payload.
  CHECK(parse_messages(message(Bytes{1, 2, 3})).empty());
  Bytes bad_ihl = ipv4(IPPROTO_TCP, "1.2.3.4", "5.6.7.8", 1, 2);
  bad_ihl[0] = 0x4f;
  CHECK(parse_messages(message(bad_ihl)).empty());
  // Every truncation of a valid message yields nothing and stays in bounds (ASan checks).
  const Bytes whole = message(ipv4(IPPROTO_UDP, "10.200.0.1", "8.8.8.8", 40000, 123));
  for (size_t n = 0; n < whole.size(); ++n) {
    const Bytes cut(whole.begin(), whole.begin() + static_cast<long>(n));
    CHECK(parse_messages(cut).size() <= 1);
  }
  // A length field larger than the datagram.
  Bytes lying = whole;
  lying[0] = 0xff;
  lying[1] = 0xff;
  CHECK(parse_messages(lying).empty());
}

TEST_CASE("nflog: the fuzz corpus seeds are written from these messages") {
  // Keeps tests/fuzz/nflog/corpus honest: its seeds are exactly these messages.
  const std::string dir = OPENSHELL_NFLOG_CORPUS;
  auto read = [&](const std::string& name) {
    std::ifstream in(dir + "/" + name, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), {});
  };
  CHECK(read("udp_v4.bin") == message(ipv4(IPPROTO_UDP, "10.200.0.1", "8.8.8.8", 40000, 123)));
  CHECK(read("tcp_v4.bin") ==
        message(ipv4(IPPROTO_TCP, "10.200.0.1", "192.0.2.1", 50000, 443), 7));
}
