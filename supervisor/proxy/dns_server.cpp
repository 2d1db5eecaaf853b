#include "supervisor/proxy/dns_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <span>
#include <system_error>
#include <utility>

#include "core/dns_message.hpp"
#include "core/hosts_file.hpp"
#include "sys/file_util.hpp"
#include "core/log.hpp"

namespace openshell::supervisor::proxy {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

constexpr std::string_view kComponent = "dns";
// A hosts file larger than this is not read (names then resolve through DNS only).
constexpr size_t kMaxHostsFileBytes = 1 << 20;

// getaddrinfo's EAI_* codes are neither errno values nor negative errnos; give them a category
// so that a resolver failure travels as an ordinary std::system_error with a readable message.
class GaiCategory final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "getaddrinfo"; }
  [[nodiscard]] std::string message(int code) const override { return ::gai_strerror(code); }
};

const std::error_category& gai_category() {
  static const GaiCategory category;
  return category;
}

// What a resolution came to; built on a resolver thread, consumed on the strand.
struct Outcome {
  enum class Kind { kAddresses, kNoSuchName, kFailed };
  Kind kind = Kind::kFailed;
  std::vector<IpAddress> addresses;
  std::string reason;  // kFailed only, for the debug log
};

Outcome run_resolver(const Resolve& resolve, const std::string& name) {
  Outcome out;
  try {
    out.addresses = resolve(name);
    out.kind = out.addresses.empty() ? Outcome::Kind::kNoSuchName : Outcome::Kind::kAddresses;
  } catch (const std::exception& e) {
    out.kind = Outcome::Kind::kFailed;
    out.reason = e.what();
  } catch (...) {
    out.kind = Outcome::Kind::kFailed;
    out.reason = "unknown exception";
  }
  return out;
}

// The socket's protocol must match its family, or Asio's later endpoint handling is wrong; the
// supervisor binds 10.200.0.1 today, but nothing here needs to assume it.
udp protocol_of(int fd) {
  int type = 0;
  socklen_t type_len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0) {
    throw boost::system::system_error(errno, boost::system::system_category(),
                                      "dns socket: SO_TYPE");
  }
  if (type != SOCK_DGRAM) {
    throw boost::system::system_error(EINVAL, boost::system::system_category(),
                                      "dns socket: not a datagram socket");
  }
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
    throw boost::system::system_error(errno, boost::system::system_category(),
                                      "dns socket: getsockname");
  }
  return local.ss_family == AF_INET6 ? udp::v6() : udp::v4();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PinTable

bool IpAddressLess::operator()(const IpAddress& a, const IpAddress& b) const {
  if (a.v6 != b.v6) return !a.v6;
  return a.bytes < b.bytes;
}

void PinTable::pin(const IpAddress& address, const std::string& name) {
  std::lock_guard lock(mu_);
  if (auto it = by_address_.find(address); it != by_address_.end()) {
    it->second.name = name;
    order_.splice(order_.end(), order_, it->second.position);
    return;
  }
  while (by_address_.size() >= capacity_ && !order_.empty()) {
    by_address_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(address);
  try {
    by_address_.emplace(address, Entry{name, std::prev(order_.end())});
  } catch (...) {
    order_.pop_back();  // keep the two containers in step
    throw;
  }
}

std::optional<std::string> PinTable::name_for(const IpAddress& address) const {
  std::lock_guard lock(mu_);
  auto it = by_address_.find(address);
  if (it == by_address_.end()) return std::nullopt;
  return it->second.name;
}

size_t PinTable::size() const {
  std::lock_guard lock(mu_);
  return by_address_.size();
}

// ---------------------------------------------------------------------------------------------
// Host resolver

std::optional<std::vector<IpAddress>> NameCache::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.expires <= std::chrono::steady_clock::now())
    return std::nullopt;
  return it->second.addresses;
}

void NameCache::store(const std::string& name, std::vector<IpAddress> addresses) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (entries_.size() >= capacity_ && !entries_.contains(name)) {
    std::erase_if(entries_, [now](const auto& entry) { return entry.second.expires <= now; });
    if (entries_.size() >= capacity_) entries_.clear();
  }
  entries_[name] = Entry{std::move(addresses), now + ttl_};
}

size_t NameCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::vector<IpAddress> resolve_with_host(const std::string& name, const std::string& hosts_file) {
  // The question name is already fully qualified (the sandbox's stub applied its own search
  // list); a numeric form is not a DNS name at all, and getaddrinfo would hand it back as an
  // address, bypassing the name-based policy.
  in_addr numeric{};
  if (name.empty() || ::inet_aton(name.c_str(), &numeric) != 0) return {};
  // glibc's files backend matches no name with a trailing dot, so the operator's hosts file is
  // read here, exactly as asked (hosts files have no search list). Read per lookup: answers are
  // cached above, and an edit takes effect without a restart.
  if (auto text = sys::read_file(hosts_file, kMaxHostsFileBytes)) {
    auto listed = hosts_file_lookup(*text, name);
    if (listed.size() > 2 * dns::kMaxAnswers) listed.resize(2 * dns::kMaxAnswers);
    if (!listed.empty()) return listed;
  }
  // The trailing dot keeps the host's resolv.conf search list out of it: the sandbox asked for
  // exactly this name, and "svc" must not quietly become "svc.corp.example".
  const std::string absolute = name + ".";

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // The proxy dials from the host's namespace; addresses of a family the host has no route for
  // would only cost the client a failed connection attempt.
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(absolute.c_str(), nullptr, &hints, &list);
  if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_ADDRFAMILY) return {};
  if (rc == EAI_SYSTEM) {
    const int err = errno;
    throw std::system_error(err, std::generic_category(), "getaddrinfo " + name);
  }
  if (rc != 0) throw std::system_error(rc, gai_category(), "getaddrinfo " + name);
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(list, &::freeaddrinfo);

  // Per family, so that a long AAAA list cannot crowd out every A record (or the reverse).
  std::vector<IpAddress> out;
  size_t v4 = 0;
  size_t v6 = 0;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    IpAddress a;
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(sockaddr_in)) {
      if (v4 >= dns::kMaxAnswers) continue;
      sockaddr_in sin{};
      std::memcpy(&sin, ai->ai_addr, sizeof sin);
      std::memcpy(a.bytes.data(), &sin.sin_addr, 4);
    } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(sockaddr_in6)) {
      if (v6 >= dns::kMaxAnswers) continue;
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, ai->ai_addr, sizeof sin6);
      a.v6 = true;
      std::memcpy(a.bytes.data(), &sin6.sin6_addr, 16);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) != out.end()) continue;
    ++(a.v6 ? v6 : v4);
    out.push_back(a);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// DnsServer

// Everything a pending handler touches. Handlers hold a shared_ptr to it, so a completion that
// arrives after ~DnsServer finds a closed socket instead of freed memory. All members except
// `open` and the immutable ones are used on the strand only.
struct DnsServer::State : std::enable_shared_from_this<DnsServer::State> {
  State(asio::io_context& io, int fd, NameAllowed allowed_in, Resolve resolve_in,
        std::shared_ptr<PinTable> pins_in, DeniedName denied_in,
        std::shared_ptr<LazyPool> resolvers_in)
      : strand(asio::make_strand(io)),
        socket(strand),
        allowed(std::move(allowed_in)),
        resolve(std::move(resolve_in)),
        pins(std::move(pins_in)),
        denied(std::move(denied_in)),
        resolvers(std::move(resolvers_in)) {
    // The server owns fd from here on, failure included.
    try {
      const udp protocol = protocol_of(fd);
      socket.assign(protocol, fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
    // Replies go out with a synchronous send on the strand: a full send buffer drops that reply
    // (the client retries) instead of queueing without bound or blocking the io thread.
    socket.non_blocking(true);
  }

  void receive() {
    socket.async_receive_from(asio::buffer(buffer), sender,
                              [self = shared_from_this()](const boost::system::error_code& ec,
                                                          size_t n) { self->on_datagram(ec, n); });
  }

  void on_datagram(const boost::system::error_code& ec, size_t n) {
    if (!open.load() || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
      return;
    }
    if (ec) {
      // Transient (ENOBUFS, a queued ICMP error): that datagram is lost, the server goes on.
      log::debug(kComponent, "receive failed: " + ec.message());
    } else {
      try {
        handle(std::span<const uint8_t>(buffer.data(), n), sender);
      } catch (const std::exception& e) {
        log::debug(kComponent, std::string("query dropped: ") + e.what());
      }
    }
    receive();
  }

  void handle(std::span<const uint8_t> packet, const udp::endpoint& from) {
    // The buffer is one byte larger than any acceptable query, so a longer datagram shows up
    // as too long here rather than as a silently truncated (and perhaps parseable) prefix.
    if (packet.size() > dns::kMaxQuerySize) {
      log::debug(kComponent, "dropping oversized datagram");
      return;
    }
    auto parsed = dns::parse_query(packet);
    if (!parsed) {
      // No reply: a garbage or spoofed packet must not earn one (no reflection).
      log::debug(kComponent, "dropping malformed query: " + parsed.error().message());
      return;
    }
    dns::Query query = std::move(parsed).value();
    const std::string& name = query.question.name;

    bool is_allowed = false;
    try {
      is_allowed = allowed(name);
    } catch (const std::exception& e) {
      log::debug(kComponent, "policy check failed for " + name + ": " + e.what());
      send(dns::build_servfail(query), from);
      return;
    }
    if (!is_allowed) {
      // Before the reply, so that whoever reads the event knows of it no later than the client.
      try {
        if (denied) denied(name, query.question.qtype);
      } catch (const std::exception& e) {
        log::debug(kComponent, std::string("denied-name callback failed: ") + e.what());
      }
      send(dns::build_nxdomain(query), from);
      return;
    }

    const uint16_t qtype = query.question.qtype;
    if (query.question.qclass != dns::kClassIn ||
        (qtype != dns::kTypeA && qtype != dns::kTypeAaaa)) {
      // Only addresses are served; other types (MX, TXT, HTTPS...) are answered without spending
      // a resolver slot.
      send(dns::build_nodata(query), from);
      return;
    }
    if (in_flight >= kMaxInFlight) {
      send(dns::build_servfail(query), from);
      return;
    }

    ++in_flight;
    try {
      asio::post(resolvers->executor(), [self = shared_from_this(), query, from]() mutable {
        Outcome outcome = run_resolver(self->resolve, query.question.name);
        asio::post(self->strand,
                   [self, query = std::move(query), from, outcome = std::move(outcome)]() mutable {
                     self->finish(query, from, std::move(outcome));
                   });
      });
    } catch (...) {
      --in_flight;
      throw;
    }
  }

  void finish(const dns::Query& query, const udp::endpoint& to, Outcome outcome) {
    --in_flight;
    if (!open.load()) return;
    try {
      std::vector<uint8_t> reply;
      switch (outcome.kind) {
        case Outcome::Kind::kFailed:
          log::debug(kComponent, "resolving " + query.question.name + " failed: " + outcome.reason);
          reply = dns::build_servfail(query);
          break;
        case Outcome::Kind::kNoSuchName:
          reply = dns::build_nxdomain(query);
          break;
        case Outcome::Kind::kAddresses: {
          const bool want_v6 = query.question.qtype == dns::kTypeAaaa;
          std::vector<IpAddress> answer;
          for (const IpAddress& a : outcome.addresses) {
            if (a.v6 != want_v6) continue;
            if (answer.size() >= dns::kMaxAnswers) break;
            answer.push_back(a);
          }
          // Pinned before the reply leaves: a connection that follows the answer must always
          // find its name. An address the builder leaves out for size is pinned all the same,
          // which costs only a slot.
          if (pins) {
            for (const IpAddress& a : answer) pins->pin(a, query.question.name);
          }
          reply = dns::build_answer(query, answer, kTtlSeconds);
          break;
        }
      }
      send(reply, to);
    } catch (const std::exception& e) {
      log::debug(kComponent, std::string("reply dropped: ") + e.what());
    }
  }

  void send(const std::vector<uint8_t>& reply, const udp::endpoint& to) {
    if (reply.empty()) return;  // the builder could not encode it; nothing sensible to send
    boost::system::error_code ec;
    socket.send_to(asio::buffer(reply), to, 0, ec);
    if (ec) log::debug(kComponent, "reply not sent: " + ec.message());
  }

  // Called from ~DnsServer, on the io thread or with the io context stopped (see there).
  void shut_down() {
    open.store(false);
    boost::system::error_code ignored;
    socket.close(ignored);
  }

  asio::strand<asio::io_context::executor_type> strand;
  udp::socket socket;
  const NameAllowed allowed;
  const Resolve resolve;
  const std::shared_ptr<PinTable> pins;
  const DeniedName denied;
  const std::shared_ptr<LazyPool> resolvers;

  std::atomic<bool> open{true};
  bool started = false;
  size_t in_flight = 0;
  std::array<uint8_t, dns::kMaxQuerySize + 1> buffer{};
  udp::endpoint sender;
};

DnsServer::DnsServer(asio::io_context& io, int socket_fd, NameAllowed allowed, Resolve resolve,
                     std::shared_ptr<PinTable> pins, DeniedName denied)
    : state_(std::make_shared<State>(io, socket_fd, std::move(allowed), std::move(resolve),
                                     std::move(pins), std::move(denied), resolvers_)) {}

DnsServer::~DnsServer() {
  // The socket is closed here rather than through the strand: posting would leave it open when
  // the io context never runs again. Callers destroy the server on the io thread or after the
  // io context has stopped, so no handler is using the socket concurrently.
  state_->shut_down();
  // Resolutions already running call `resolve`, which the caller may tear down next; wait for
  // them. Their replies are dropped (open is false).
  resolvers_->join();
}

void DnsServer::start() {
  asio::post(state_->strand, [self = state_] {
    if (self->started || !self->open.load()) return;
    self->started = true;
    self->receive();
  });
}

}  // namespace openshell::supervisor::proxy
