#include "supervisor/launch/network.hpp"

#include "sys/netns.hpp"
#include "sys/nft.hpp"

namespace openshell::supervisor {

std::string capture_ruleset() {
  const std::string addr = kSandboxAddressText;
  const std::string proxy = std::to_string(kTransparentPort);
  const std::string explicit_proxy = std::to_string(kExplicitProxyPort);
  const std::string dns = std::to_string(kDnsPort);
  // Output hook only: every packet here was sent by a process in the sandbox. NAT first
  // (priority -100), then the filter sees the rewritten destination.
  return "table inet openshell {\n"
         "  chain capture {\n"
         "    type nat hook output priority -100; policy accept;\n"
         "    ip daddr 127.0.0.0/8 return\n"
         "    ip daddr " +
         addr +
         " return\n"
         "    meta l4proto tcp dnat ip to " +
         addr + ":" + proxy +
         "\n"
         "    meta l4proto udp udp dport 53 dnat ip to " +
         addr + ":" + dns +
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
         // Refused, not dropped: the agent learns at once instead of waiting for a timeout.
         "    meta l4proto tcp reject with tcp reset\n"
         "    reject with icmpx admin-prohibited\n"
         "  }\n"
         "}\n";
}

Status configure_sandbox_network(int netns_fd) {
  auto inside = sys::NetnsGuard::enter(netns_fd);
  if (!inside) return inside.error();
  if (int err = sys::loopback_up_in_child(); err != 0)
    return Error::from_errno("bringing up lo", err);
  if (auto st = sys::add_capture_routes(kSandboxAddress); !st) return st;
  if (auto st = sys::nft_apply(capture_ruleset()); !st) return st;
  return {};
}

}  // namespace openshell::supervisor
