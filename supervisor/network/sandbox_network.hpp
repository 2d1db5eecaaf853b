// The sandbox's network namespace (DESIGN.md §4): loopback, a default route through it, and
// nftables rules in the namespace's output hook that send every TCP connection to the
// supervisor's transparent proxy port and every DNS query to its DNS port, and refuse
// everything else at once. Nothing on the host changes.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/capture.hpp"
#include "core/cidr.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "sys/nft.hpp"

namespace openshell::supervisor {

using capture::kDnsPort;
using capture::kExplicitProxyPort;
using capture::kRefusedLogBytes;
using capture::kRefusedLogGroup;
using capture::kSandboxAddress;
using capture::kSandboxAddressText;
using capture::kTransparentPort;

// The sandbox's network namespace, created and configured on a thread of its own so that the
// work (mostly loading libnftables and the first nftables commit) overlaps with planning and with
// the child building its root. The namespace belongs to the initial user namespace: nothing in the
// sandbox ever holds CAP_NET_ADMIN over it.
class SandboxNetwork {
 public:
  // Returns at once; the namespace is created and configured in the background. `prepared`, if
  // given, is a namespace set up as configure() would (openshelld's spare, made from
  // core/capture.hpp by sys::new_capture_netns): it is entered instead, only the listeners are
  // opened there, and libnftables is loaded after the agent was released, for later updates.
  static std::unique_ptr<SandboxNetwork> start(UniqueFd prepared = {});
  SandboxNetwork(const SandboxNetwork&) = delete;
  SandboxNetwork& operator=(const SandboxNetwork&) = delete;
  ~SandboxNetwork();

  // Waits until the namespace exists (not until it is configured).
  Result<int> netns_fd();
  // Waits for the configuration; the agent must not run before this has succeeded.
  Status wait_configured();

  // The supervisor's sockets inside the namespace, bound on kSandboxAddress; valid after
  // wait_configured() succeeded. The caller takes ownership.
  struct Listeners {
    UniqueFd explicit_proxy;  // TCP kExplicitProxyPort
    UniqueFd transparent;     // TCP kTransparentPort
    UniqueFd dns;             // UDP kDnsPort
    UniqueFd diag;            // NETLINK_SOCK_DIAG, for finding a connection's client socket
    UniqueFd refused_log;     // NFLOG kRefusedLogGroup (empty if the kernel has no nflog)
  };
  Listeners take_listeners() { return std::move(listeners_); }

  // Only TCP to these IPv4 destinations reaches the transparent proxy; nftables refuses all
  // other TCP at connect() time, so a raw connect to an address nobody allowed fails at once.
  // Addresses the policy DNS handed out. They only accumulate, at most kMaxPinned; an address
  // already pinned costs no commit (most answers repeat an earlier one).
  static constexpr size_t kMaxPinned = 65536;
  Status add_pinned(const std::vector<IpAddress>& addresses);
  // Addresses and blocks the policy names itself (replaced on every policy change):
  Status set_policy_destinations(const std::vector<Cidr>& blocks);

 private:
  SandboxNetwork() = default;
  // On the namespace's thread: into `given` or a new namespace; its descriptor, or -errno with
  // status_ set.
  int enter(UniqueFd given);
  // On the namespace's thread: lo, routes, the ruleset, the listeners.
  Status configure();
  void load_nft();  // after a prepared namespace's start; logs if it cannot
  // nftables commands on the namespace's thread, through its context.
  Status apply_inside(std::string commands);
  Status open_listeners();
  // Runs `task` on the namespace's thread (nftables talks to the thread's namespace).
  Status run_inside(std::function<Status()> task);
  void serve();  // the thread's loop after configuration

  std::thread thread_;
  // The namespace's nftables context; used on its thread only (empty if it could not load).
  std::optional<sys::Nft> nft_;
  std::future<int> created_;  // the namespace fd, or -errno
  std::future<void> configured_;
  UniqueFd netns_;
  Status status_;
  Listeners listeners_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<Status()>> tasks_;
  std::mutex pinned_mu_;
  std::unordered_set<uint32_t> pinned_;  // what pinned4 holds (IPv4, network byte order)
  std::mutex policy_elements_mu_;
  std::string policy_elements_;  // what policy4 holds now ("" at start: empty)
  bool stopping_ = false;
};

}  // namespace openshell::supervisor
