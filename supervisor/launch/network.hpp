// The sandbox's network namespace (DESIGN.md §4): loopback, a default route through it, and
// nftables rules in the namespace's output hook that send every TCP connection to the
// supervisor's transparent proxy port and every DNS query to its DNS port, and refuse
// everything else at once. Nothing on the host changes.
#pragma once

#include <array>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

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

// The sandbox's network namespace, created and configured on a thread of its own so that the
// work (about 2 ms, mostly the nftables commit) overlaps with planning and with the child
// building its root. The namespace belongs to the initial user namespace: nothing in the
// sandbox ever holds CAP_NET_ADMIN over it.
class SandboxNetwork {
 public:
  // Returns at once; the namespace is created and configured in the background.
  static std::unique_ptr<SandboxNetwork> start();
  SandboxNetwork(const SandboxNetwork&) = delete;
  SandboxNetwork& operator=(const SandboxNetwork&) = delete;
  ~SandboxNetwork();

  // Waits until the namespace exists (not until it is configured).
  Result<int> netns_fd();
  // Waits for the configuration; the agent must not run before this has succeeded.
  Status wait_configured();

 private:
  SandboxNetwork() = default;
  std::thread thread_;
  std::future<int> created_;  // the namespace fd, or -errno
  UniqueFd netns_;
  Status status_;
};

}  // namespace openshell::supervisor
