// The fixed shape of a sandbox's network namespace (DESIGN.md §4), shared by the supervisor,
// which makes one when nobody gave it one, and openshelld, which keeps one spare: the sandbox's
// address on lo, the supervisor's ports there, and the nftables ruleset that captures egress.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace openshell::capture {

// The sandbox's own address, on its lo. The supervisor's listeners bind here, inside the
// namespace; the agent's explicit proxy variables point here.
inline constexpr std::array<uint8_t, 4> kSandboxAddress = {10, 200, 0, 1};
inline constexpr const char* kSandboxAddressText = "10.200.0.1";
// https://inference.local and http://inference.local (issue 16): a name the sandbox's
// /etc/hosts and policy DNS give this address, which is captured to the proxy on every TCP port
// like an address the DNS answered; the proxy serves it itself (the privacy router), before
// any policy.
inline constexpr std::array<uint8_t, 4> kInferenceAddress = {10, 200, 0, 2};
inline constexpr const char* kInferenceAddressText = "10.200.0.2";
inline constexpr const char* kInferenceHost = "inference.local";
inline constexpr uint16_t kExplicitProxyPort = 3128;
inline constexpr uint16_t kTransparentPort = 15001;
inline constexpr uint16_t kDnsPort = 53;
// The NFLOG group the firewall reports refused packets to (per namespace: no clash with the
// host's), and how much of each packet it copies (the IP and transport headers).
inline constexpr uint16_t kRefusedLogGroup = 7;
inline constexpr uint32_t kRefusedLogBytes = 80;

// The nftables ruleset (one atomic transaction): table `inet openshell`, its sets pinned4 (what
// the policy DNS answered) and policy4 (what the policy names by address) empty.
std::string ruleset();

}  // namespace openshell::capture
