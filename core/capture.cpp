#include "core/capture.hpp"

#include <string>

namespace openshell::capture {

std::string ruleset() {
  const std::string addr = kSandboxAddressText;
  const std::string proxy = std::to_string(kTransparentPort);
  const std::string explicit_proxy = std::to_string(kExplicitProxyPort);
  const std::string dns = std::to_string(kDnsPort);
  // Output hook only: every packet here was sent by a process in the sandbox. NAT first
  // (priority -100), then the filter sees the rewritten destination.
  return "table inet openshell {\n"
         // Destinations TCP may take (through the proxy): DNS answers we gave, and what the
         // policy names by address. Anything else is refused before a handshake.
         // No size: the kernel would allocate the hash for the most elements at creation (1 MiB
         // for 65536: two thirds of the kernel's part of the first commit, by perf); the set
         // grows as pins come, and add_pinned bounds it.
         "  set pinned4 { type ipv4_addr; }\n"
         "  set policy4 { type ipv4_addr; flags interval; size 4096; }\n"
         "  chain capture {\n"
         "    type nat hook output priority -100; policy accept;\n"
         "    ip daddr 127.0.0.0/8 return\n"
         "    ip daddr " +
         addr +
         " return\n"
         "    meta l4proto udp udp dport 53 dnat ip to " +
         addr + ":" + dns +
         "\n"
         "    ip daddr " +
         std::string(kInferenceAddressText) + " meta l4proto tcp dnat ip to " + addr + ":" + proxy +
         "\n"
         "    ip daddr @pinned4 meta l4proto tcp dnat ip to " +
         addr + ":" + proxy +
         "\n"
         "    ip daddr @policy4 meta l4proto tcp dnat ip to " +
         addr + ":" + proxy +
         "\n"
         "  }\n"
         "  chain egress {\n"
         "    type filter hook output priority 0; policy accept;\n"
         "    ct state established,related accept\n"
         "    ip daddr 127.0.0.0/8 accept\n"
         "    ip6 daddr ::1 accept\n"
         "    ip daddr " +
         addr + " tcp dport { " + explicit_proxy + ", " + proxy +
         " } accept\n"
         "    ip daddr " +
         addr + " udp dport " + dns +
         " accept\n"
         // Reported (a bypass attempt; rate-limited so a flood costs little), then refused, not
         // dropped: the agent learns at once instead of waiting for a timeout.
         "    limit rate 20/second burst 50 packets log group " +
         std::to_string(kRefusedLogGroup) +
         "\n"
         "    meta l4proto tcp reject with tcp reset\n"
         "    reject with icmpx admin-prohibited\n"
         "  }\n"
         "}\n";
}

}  // namespace openshell::capture
