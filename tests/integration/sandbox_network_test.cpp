// SandboxNetwork on its own: the namespace's ruleset applies, the pinned set's bound holds, and
// a namespace prepared beforehand (openshelld's spare) is used as it is.
#include "supervisor/network/sandbox_network.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/capture.hpp"
#include "sys/netns.hpp"
#include "sys/nft.hpp"

using openshell::IpAddress;
using openshell::supervisor::SandboxNetwork;

namespace {

IpAddress v4(uint32_t n) {
  IpAddress ip;
  ip.bytes = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16),
              static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  return ip;
}

// The congestion control of a TCP socket made in `net`'s namespace, or why there is none.
std::string congestion_control_inside(SandboxNetwork& net) {
  auto netns = net.netns_fd();
  if (!netns) return netns.error().message();
  std::string name;
  // On a thread of its own: the guard moves only the calling thread, and back.
  std::thread([&name, fd = *netns] {
    auto inside = openshell::sys::NetnsGuard::enter(fd);
    if (!inside) {
      name = inside.error().message();
      return;
    }
    openshell::UniqueFd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    char buf[32] = {};
    socklen_t len = sizeof buf;
    if (!sock || ::getsockopt(sock.get(), IPPROTO_TCP, TCP_CONGESTION, buf, &len) != 0) {
      name = std::string("socket or TCP_CONGESTION: ") + std::strerror(errno);
      return;
    }
    name.assign(buf, ::strnlen(buf, len));
  }).join();
  return name;
}

}  // namespace

// Reno, not the host's default: BBR (this CI host's) paces every socket, on a hop with no wire.
TEST_CASE("SandboxNetwork: TCP in the sandbox's namespace is not paced") {
  auto own = SandboxNetwork::start();
  REQUIRE(own->wait_configured().ok());
  CHECK(congestion_control_inside(*own) == "reno");

  auto prepared = openshell::sys::new_capture_netns(openshell::capture::kSandboxAddress,
                                                    openshell::capture::ruleset());
  REQUIRE(prepared.ok());
  auto given = SandboxNetwork::start(std::move(*prepared));
  REQUIRE(given->wait_configured().ok());
  CHECK(congestion_control_inside(*given) == "reno");
}

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

TEST_CASE("SandboxNetwork: a prepared namespace is entered, not remade") {
  auto prepared = openshell::sys::new_capture_netns(openshell::capture::kSandboxAddress,
                                                    openshell::capture::ruleset());
  REQUIRE(prepared.ok());
  struct stat given {};
  REQUIRE(::fstat(prepared->get(), &given) == 0);
  auto net = SandboxNetwork::start(std::move(*prepared));
  REQUIRE(net->wait_configured().ok());
  auto fd = net->netns_fd();
  REQUIRE(fd.ok());
  struct stat used {};
  REQUIRE(::fstat(*fd, &used) == 0);
  CHECK(used.st_ino == given.st_ino);
  // The listeners are there, and nftables (loaded after the start) takes the later updates.
  auto listeners = net->take_listeners();
  CHECK(listeners.explicit_proxy.valid());
  CHECK(listeners.transparent.valid());
  CHECK(listeners.dns.valid());
  CHECK(net->add_pinned({v4((198U << 24) | (18U << 16) | 9)}).ok());
  CHECK(net->set_policy_destinations({}).ok());
}

TEST_CASE("SandboxNetwork: the supervisor's own namespace is not a sandbox's") {
  openshell::UniqueFd own(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  REQUIRE(own.valid());
  auto net = SandboxNetwork::start(std::move(own));
  auto configured = net->wait_configured();
  REQUIRE_FALSE(configured.ok());
  CHECK(configured.error().message().find("the supervisor's own") != std::string::npos);
  CHECK_FALSE(net->netns_fd().ok());
}
