// Network namespace helpers.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::sys {

// Brings up "lo" in the calling process's network namespace. Pre-exec safe; 0 or an errno.
int loopback_up_in_child();

// Runs in the calling thread's namespace (rtnetlink): adds `v4_address`/32 to lo and default
// routes for IPv4 and IPv6 through lo. With them a connect() to any address leaves the socket
// layer, so the output hook's nftables rules can capture or refuse it; without a route the
// kernel would fail it before nftables ever sees it.
Status add_capture_routes(const std::array<uint8_t, 4>& v4_address);

// Sets the default TCP congestion control of the calling thread's network namespace (its
// /proc/sys/net/ipv4/tcp_congestion_control): sockets made there afterwards use `algorithm`.
// Needs CAP_NET_ADMIN over the namespace and a writable /proc/sys.
Status set_default_congestion_control(std::string_view algorithm);

// Whether `fd` is a network namespace (not, say, a file that was to be one).
bool is_netns(int fd);

// Switches the calling thread into the network namespace `target` and back on destruction.
class NetnsGuard {
 public:
  static Result<NetnsGuard> enter(int target_netns_fd);
  NetnsGuard(NetnsGuard&&) = default;
  NetnsGuard& operator=(NetnsGuard&&) = delete;
  NetnsGuard(const NetnsGuard&) = delete;
  ~NetnsGuard();

 private:
  explicit NetnsGuard(UniqueFd original) : original_(std::move(original)) {}
  UniqueFd original_;
};

}  // namespace openshell::sys
