// SandboxNetwork on its own: the namespace's ruleset applies, and the pinned set's bound holds.
#include "supervisor/launch/network.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using openshell::IpAddress;
using openshell::supervisor::SandboxNetwork;

namespace {

IpAddress v4(uint32_t n) {
  IpAddress ip;
  ip.bytes = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16),
              static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  return ip;
}

}  // namespace

TEST_CASE("SandboxNetwork: pins accumulate up to their bound, repeats are free") {
  auto net = SandboxNetwork::start();
  REQUIRE(net->wait_configured().ok());

  // 198.18.0.0/15 (benchmarking addresses): never anyone's real destination.
  const uint32_t base = (198U << 24) | (18U << 16);
  REQUIRE(net->add_pinned({v4(base + 1), v4(base + 2), v4(base + 1)}).ok());
  // Already pinned: accepted again (an answer repeated), with or without new ones beside it.
  REQUIRE(net->add_pinned({v4(base + 2)}).ok());
  REQUIRE(net->add_pinned({v4(base + 2), v4(base + 3)}).ok());

  // One call that would pass the bound is refused whole, with the reason; nothing of it is
  // counted, so later pins still fit.
  std::vector<IpAddress> flood;
  for (uint32_t i = 0; i < SandboxNetwork::kMaxPinned; ++i) flood.push_back(v4(base + 16 + i));
  auto over = net->add_pinned(flood);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().message().find("limit is 65536") != std::string::npos);
  CHECK(net->add_pinned({v4(base + 4)}).ok());
}
