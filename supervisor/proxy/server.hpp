// The sandbox's egress proxy (DESIGN.md §4). Two listeners inside the sandbox's network
// namespace: the explicit proxy (CONNECT and absolute-form http://, for clients that honour the
// proxy variables) and the transparent port that nftables redirects every other TCP connection
// to. Every connection is decided by destination and calling binary (core/egress); the proxy
// resolves names itself and dials only the addresses it checked, from the host's namespace.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/cidr.hpp"
#include "core/event_sink.hpp"
#include "core/net_guard.hpp"
#include "core/policy.hpp"
#include "core/result.hpp"
#include "core/services.hpp"
#include "supervisor/proxy/connect_tracker.hpp"
#include "supervisor/proxy/dns_server.hpp"

namespace openshell::supervisor::proxy {

struct Limits {
  size_t max_connections = 512;  // per sandbox, both listeners together
  size_t max_header_bytes = 16 * 1024;
  int header_timeout_s = 30;   // to send a request head (explicit)
  int peek_timeout_ms = 1000;  // to say something before we decide on what we have
  int connect_timeout_s = 10;
  int idle_timeout_s = 600;  // a tunnel with no traffic either way
};

struct Termination;  // tls_contexts.hpp

using net::UpstreamProxy;

struct ProxyConfig {
  std::string sandbox;
  // The policy in force; swapped on reload. Read once per decision.
  std::function<std::shared_ptr<const policy::Policy>()> policy;
  // The providers and inference routes in force (core/services); swapped when the daemon
  // sends new ones. Read once per request.
  std::function<std::shared_ptr<const services::Services>()> services;
  std::shared_ptr<PinTable> pins;
  EventSink* events = nullptr;
  pid_t sandbox_init = -1;  // host pid of the sandbox's init (its /proc/net view)
  std::string procs_file;   // the sandbox cgroup's cgroup.procs
  int diag_fd = -1;         // sock_diag socket in the sandbox's namespace (see identity.hpp)
  std::shared_ptr<const ConnectTracker> tracker;  // who connected what (connect_tracker.hpp)
  Resolve resolve;          // name -> addresses, blocking; run off the io thread
  // name -> addresses when known without blocking (a static map, recent answers), else nullopt.
  std::function<std::optional<std::vector<IpAddress>>(const std::string&)> lookup;
  Limits limits;
  // TLS termination for inspected endpoints (protocol rest or websocket); without it such a
  // connection is refused.
  std::shared_ptr<Termination> tls;
  std::optional<UpstreamProxy> upstream_proxy;
};

class ProxyServer : public std::enable_shared_from_this<ProxyServer> {
 public:
  // explicit_fd and transparent_fd: listening TCP sockets created in the sandbox's namespace.
  ProxyServer(boost::asio::io_context& io, ProxyConfig config, int explicit_fd, int transparent_fd);
  ~ProxyServer();
  void start();
  // Call after the policy changed: every open connection the new policy would refuse is
  // closed. New connections see the new policy at once.
  void policy_changed();

  struct Session;  // one accepted connection (server.cpp)
  struct Impl;     // acceptors, live sessions, resolver threads (server.cpp)

 private:
  void accept_loop(bool transparent);

  boost::asio::io_context& io_;
  ProxyConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace openshell::supervisor::proxy
