// UpstreamHost: a stand-in "internet host" for egress-proxy tests. The proxy runs in the host
// network namespace and refuses loopback destinations (SSRF guard), so tests need an upstream on
// a non-loopback address, and must never touch a real network (HOUSE_STYLE "Tests"). Each
// UpstreamHost is a network namespace of its own, joined to the host namespace by a veth pair
// with private test addresses; tests/helpers/upstream_server serves inside it.
//
// Addresses: slot S (0..16383) of 10.77.0.0/16 cut into /30s. Host side 10.77.S/64.(S%64*4+1),
// namespace side +1 (the server's address()); IPv6, when the kernel has it, fd77:S::1 and ::2
// (/126, no DAD). A slot is taken under a host-wide lock and only if no interface holds its
// address or its veth name, so parallel test processes never share one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "tests/support/harness.hpp"

namespace openshell::testing {

class UpstreamHost {
 public:
  // Creates namespace osh-up-<pid>-<n>, veth oshu<slot> (peer "up0" inside), addresses, links
  // up. Throws std::runtime_error (after undoing what it made) when `ip` fails.
  UpstreamHost();
  // Kills the servers, deletes the veth and the namespace. Never throws.
  ~UpstreamHost();
  UpstreamHost(const UpstreamHost&) = delete;
  UpstreamHost& operator=(const UpstreamHost&) = delete;

  // Runs upstream_server on address() and, when IPv6 is up, on address6(), both at `port`;
  // `mode` is "http", "http-keepalive", "echo" or "bulk N". Returns once every server listens;
  // the servers exit by themselves after `seconds`. Throws with the server's output if one does
  // not come up within 10 s.
  void start(std::uint16_t port, const std::string& mode, int seconds = 60);
  // The same with tests/helpers/tls_upstream (HTTP, HTTPS with a CA of its own, WebSocket, a
  // CONNECT proxy: see its header), on address() only: "https NAME CA_FILE" writes one CA.
  void start_tls_upstream(std::uint16_t port, const std::string& mode, int seconds = 60);

  // The namespace side: where the servers listen.
  [[nodiscard]] const std::string& address() const { return address_; }
  [[nodiscard]] const std::string& address6() const { return address6_; }  // "" without IPv6
  // The host side: the source address of connections the host namespace makes to address().
  [[nodiscard]] const std::string& host_address() const { return host_address_; }
  [[nodiscard]] const std::string& host_address6() const { return host_address6_; }
  [[nodiscard]] const std::string& netns() const { return netns_; }
  [[nodiscard]] const std::string& veth() const { return veth_; }

  // Everything the servers printed so far ("listening ...", "request METHOD TARGET host=H
  // peer=P", "served N"): lets a test tell whether a request reached the upstream at all.
  [[nodiscard]] std::string server_output() const;

 private:
  void create_links(int slot);
  void run_server(const std::string& program, std::uint16_t port, const std::string& mode,
                  int seconds, std::initializer_list<const std::string*> addresses);
  void cleanup() noexcept;

  TempDir dir_;  // server output files
  std::string netns_;
  std::string veth_;
  std::string address_;
  std::string address6_;
  std::string host_address_;
  std::string host_address6_;
  std::vector<pid_t> servers_;
  std::vector<std::string> logs_;
};

}  // namespace openshell::testing
