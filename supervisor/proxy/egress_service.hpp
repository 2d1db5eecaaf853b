// Everything egress for one running sandbox: the policy in force (swapped on reload), the
// DNS pins, the proxy and the policy DNS, on the supervisor's io_context.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cidr.hpp"
#include "core/event_sink.hpp"
#include "core/policy.hpp"
#include "core/services.hpp"
#include "core/unique_fd.hpp"
#include "supervisor/network/sandbox_network.hpp"
#include "supervisor/proxy/connect_tracker.hpp"
#include "supervisor/proxy/dns_server.hpp"
#include "supervisor/proxy/server.hpp"

namespace openshell::supervisor::proxy {

using supervisor::SandboxNetwork;

// Names answered from a fixed map instead of the host's resolver (--resolve NAME=ADDRESS).
using StaticHosts = std::map<std::string, std::vector<IpAddress>>;

// The policy as the proxy uses it: binaries listed by a symlink (/usr/bin/python3) also match
// the file the link resolves to, since identity comes from /proc/PID/exe.
std::shared_ptr<const policy::Policy> prepare_policy(const policy::Policy& policy);

// Whether some endpoint of the policy could allow this name (the DNS question: port and
// binary are not known yet).
bool name_allowed(const policy::Policy& policy, const std::string& name);

// The IPv4 destinations the policy names by address (literal hosts, allowed_ips).
std::vector<Cidr> policy_destinations(const policy::Policy& policy);

class EgressService {
 public:
  struct Sockets {
    UniqueFd explicit_proxy, transparent, dns, diag;
    UniqueFd connect_listener;  // may be empty: callers are then found by searching /proc
    UniqueFd refused_log;       // NFLOG of the firewall's refusals; may be empty (not reported)
  };
  // What the proxy inspects with: TLS termination, the operator's upstream proxy (either may
  // be absent).
  struct Inspection {
    std::shared_ptr<Termination> tls;
    std::optional<UpstreamProxy> upstream_proxy;
    // Providers and inference routes (core/services): none until the daemon sends them.
    std::shared_ptr<const services::Services> services;
  };
  EgressService(boost::asio::io_context& io, std::string sandbox,
                std::shared_ptr<const policy::Policy> policy, EventSink& events, pid_t sandbox_init,
                std::string procs_file, StaticHosts static_hosts, Sockets sockets,
                SandboxNetwork& network, Inspection inspection = {});
  // Reports refused packets still queued: a sandbox that ends right after a refusal still
  // gets its finding.
  ~EgressService();
  EgressService(const EgressService&) = delete;
  EgressService& operator=(const EgressService&) = delete;
  // Swaps in a new policy (validated by the caller) and closes connections it refuses.
  void set_policy(std::shared_ptr<const policy::Policy> policy);
  [[nodiscard]] std::shared_ptr<const policy::Policy> policy() const;
  // Swaps in the sandbox's providers and routes (validated by the caller): the next request
  // sees them.
  void set_services(std::shared_ptr<const services::Services> services);
  [[nodiscard]] std::shared_ptr<const services::Services> services() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const policy::Policy> policy_;
  std::shared_ptr<const services::Services> services_;
  SandboxNetwork& network_;
  std::shared_ptr<PinTable> pins_;
  std::shared_ptr<ProxyServer> proxy_;
  std::unique_ptr<DnsServer> dns_;
  UniqueFd diag_;
  // Packets the firewall refused, reported as Detection Findings (bypass attempts).
  void watch_refusals();
  void report_refusals();
  std::string sandbox_;
  EventSink& events_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> refused_;
  // On the heap, uninitialised: a 64 KiB stack frame is probed page by page (stack-clash
  // protection), 16 page faults at every sandbox's end even when nothing was refused.
  std::unique_ptr<uint8_t[]> refused_buf_;
};

}  // namespace openshell::supervisor::proxy
