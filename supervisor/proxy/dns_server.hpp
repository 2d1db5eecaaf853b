// The sandbox's policy DNS (DESIGN.md §4): names that some endpoint allows resolve (real
// answers, resolved by the supervisor in the host's namespace, pinned per sandbox so a captured
// connection to an address maps back to its name); every other name gets NXDOMAIN.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/cidr.hpp"
#include "supervisor/proxy/lazy_pool.hpp"

namespace openshell::supervisor::proxy {

// Total order on addresses (family, then bytes), for the pin map.
struct IpAddressLess {
  bool operator()(const IpAddress& a, const IpAddress& b) const;
};

// address -> the name the sandbox was last told resolves to it. Thread-safe. Bounded: when full,
// the pin made (or refreshed) longest ago goes first. Re-pinning an address moves it to the back,
// so an address the sandbox keeps asking for is not evicted in favour of one it asked for once.
class PinTable {
 public:
  // A capacity of 0 is treated as 1: a table that keeps nothing would break every connection.
  explicit PinTable(size_t capacity = 4096) : capacity_(capacity == 0 ? 1 : capacity) {}
  void pin(const IpAddress& address, const std::string& name);
  [[nodiscard]] std::optional<std::string> name_for(const IpAddress& address) const;
  [[nodiscard]] size_t size() const;

 private:
  struct Entry {
    std::string name;
    std::list<IpAddress>::iterator position;  // in order_
  };
  mutable std::mutex mu_;
  size_t capacity_;
  std::map<IpAddress, Entry, IpAddressLess> by_address_;
  std::list<IpAddress> order_;  // oldest first
};

// How names are resolved (host resolver in production; a static map in tests, --resolve).
// Called off the io thread. Returns the addresses (empty: the name does not exist, answered
// NXDOMAIN); throws on a resolver failure (answered SERVFAIL).
using Resolve = std::function<std::vector<IpAddress>(const std::string& name)>;
// Whether some endpoint of the current policy allows this (normalised) name. Called on the io
// thread.
using NameAllowed = std::function<bool(const std::string& name)>;
// Told about every denied name (for DNS Activity events), on the io thread, before the NXDOMAIN
// is sent.
using DeniedName = std::function<void(const std::string& name, uint16_t qtype)>;

// Recent answers of the host resolver. The proxy decides and dials every forwarded request
// anew (a kept-alive client connection may name another host each time), and a resolver round
// trip per request would cost more than the rest of it; the sandbox's DNS asks the same names.
// Answers (including "no such name") are kept for `ttl`; resolver failures are not kept.
// Thread-safe. Bounded: when full, expired entries go, and if none has, everything does.
class NameCache {
 public:
  explicit NameCache(std::chrono::steady_clock::duration ttl = std::chrono::seconds(30),
                     size_t capacity = 1024)
      : ttl_(ttl), capacity_(capacity == 0 ? 1 : capacity) {}
  [[nodiscard]] std::optional<std::vector<IpAddress>> find(const std::string& name) const;
  void store(const std::string& name, std::vector<IpAddress> addresses);
  [[nodiscard]] size_t size() const;

 private:
  struct Entry {
    std::vector<IpAddress> addresses;
    std::chrono::steady_clock::time_point expires;
  };
  mutable std::mutex mu_;
  std::chrono::steady_clock::duration ttl_;
  size_t capacity_;
  std::map<std::string, Entry, std::less<>> entries_;
};

// The production Resolve: the host's hosts file first (as nsswitch's usual "files dns"), then
// getaddrinfo (AF_UNSPEC, SOCK_STREAM, AI_ADDRCONFIG) of the absolute name in the calling
// thread's namespace, deduplicated, in getaddrinfo's order, at most 16 addresses per family.
// Neither applies the host's search list. Returns empty when the name does not exist
// (EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY) and for names that inet_aton would read as an address
// ("127.1", "0x7f000001"): those are no DNS names. Throws std::system_error for any other
// resolver failure. May block.
[[nodiscard]] std::vector<IpAddress> resolve_with_host(const std::string& name,
                                                       const std::string& hosts_file = "/etc/hosts");

class DnsServer {
 public:
  // At most this many resolutions run at once; a query beyond that gets SERVFAIL at once.
  static constexpr size_t kMaxInFlight = 8;
  static constexpr uint32_t kTtlSeconds = 60;

  // socket_fd: a UDP socket already bound inside the sandbox's namespace (10.200.0.1:53). The
  // server takes ownership of it. Throws boost::system::system_error if it cannot be adopted.
  DnsServer(boost::asio::io_context& io, int socket_fd, NameAllowed allowed, Resolve resolve,
            std::shared_ptr<PinTable> pins, DeniedName denied);
  // Closes the socket (on the io context) and waits for resolutions already running.
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  void start();

 private:
  // Declared first: state_ is built with it. One thread per resolution in flight (getaddrinfo
  // blocks), started on the first query; beyond the bound a query gets SERVFAIL and is retried.
  std::shared_ptr<LazyPool> resolvers_ = std::make_shared<LazyPool>(kMaxInFlight);
  struct State;  // shared with in-flight handlers, so that none outlives what it touches
  std::shared_ptr<State> state_;
};

}  // namespace openshell::supervisor::proxy
