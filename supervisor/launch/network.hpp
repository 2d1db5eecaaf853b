// The sandbox's network namespace (DESIGN.md §4): loopback, a default route through it, and
// nftables rules in the namespace's output hook that send every TCP connection to the
// supervisor's transparent proxy port and every DNS query to its DNS port, and refuse
// everything else at once. Nothing on the host changes.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace openshell::supervisor {

// The sandbox's own address, on its lo. The supervisor's listeners bind here, inside the
// namespace; the agent's explicit proxy variables point here.
inline constexpr std::array<uint8_t, 4> kSandboxAddress = {10, 200, 0, 1};
inline constexpr const char* kSandboxAddressText = "10.200.0.1";
inline constexpr uint16_t kExplicitProxyPort = 3128;
inline constexpr uint16_t kTransparentPort = 15001;
inline constexpr uint16_t kDnsPort = 53;

// The nftables ruleset (one atomic transaction).
std::string capture_ruleset();

// Configures the namespace behind netns_fd from the calling thread, then returns to the
// thread's own namespace.
Status configure_sandbox_network(int netns_fd);

}  // namespace openshell::supervisor
