// libFuzzer target: bytes as the NFLOG socket would deliver them -> nflog::parse_messages. It
// must never crash or over-read, and what it returns must be plausible: ports only for TCP and
// UDP, and at most one packet per netlink header the input can hold.
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/nflog.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto packets = openshell::nflog::parse_messages(std::span(data, size));
  if (packets.size() > size / sizeof(nlmsghdr)) std::abort();
  for (const auto& p : packets) {
    const bool has_ports = p.protocol == IPPROTO_TCP || p.protocol == IPPROTO_UDP;
    if (!has_ports && (p.src_port != 0 || p.dst_port != 0)) std::abort();
    if (p.src.v6 != p.dst.v6) std::abort();
  }
  return 0;
}
