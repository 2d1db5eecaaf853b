#include "supervisor/proxy/dns_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/cidr.hpp"
#include "core/unique_fd.hpp"

using openshell::IpAddress;
using openshell::UniqueFd;
using openshell::supervisor::proxy::DnsServer;
using openshell::supervisor::proxy::NameAllowed;
using openshell::supervisor::proxy::NameCache;
using openshell::supervisor::proxy::PinTable;
using openshell::supervisor::proxy::Resolve;
using openshell::supervisor::proxy::resolve_with_host;

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint16_t kA = 1;
constexpr uint16_t kMx = 15;
constexpr uint16_t kAaaa = 28;
constexpr int kRcodeNoError = 0;
constexpr int kRcodeServFail = 2;
constexpr int kRcodeNxDomain = 3;
// Bounded waits: long enough for a loaded CI machine, short enough to fail fast.
constexpr int kReplyWaitMs = 2000;
constexpr int kSilenceWaitMs = 200;

IpAddress ip(std::string_view text) {
  auto parsed = openshell::parse_ip(text);
  REQUIRE(parsed.ok());
  return *parsed;
}

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

uint16_t get16(const Bytes& b, size_t at) {
  REQUIRE(at + 2 <= b.size());
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}

uint32_t get32(const Bytes& b, size_t at) {
  return (static_cast<uint32_t>(get16(b, at)) << 16) | get16(b, at + 2);
}

// A stub resolver's query, written out by hand: header with RD, one question, class IN.
Bytes make_query(uint16_t id, std::string_view dotted, uint16_t qtype) {
  Bytes b;
  put16(b, id);
  put16(b, 0x0100);  // RD
  put16(b, 1);       // QDCOUNT
  put16(b, 0);
  put16(b, 0);
  put16(b, 0);
  while (!dotted.empty()) {
    const size_t dot = dotted.find('.');
    const std::string_view label = dotted.substr(0, dot);
    b.push_back(static_cast<uint8_t>(label.size()));
    b.insert(b.end(), label.begin(), label.end());
    dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
  }
  b.push_back(0);
  put16(b, qtype);
  put16(b, 1);  // IN
  return b;
}

struct Record {
  uint16_t type = 0;
  uint32_t ttl = 0;
  Bytes rdata;
};

struct Reply {
  uint16_t id = 0;
  uint16_t flags = 0;
  int rcode = -1;
  std::vector<Record> answers;
};

Reply parse_reply(const Bytes& b) {
  Reply r;
  r.id = get16(b, 0);
  r.flags = get16(b, 2);
  r.rcode = r.flags & 0x000F;
  REQUIRE(get16(b, 4) == 1);
  const uint16_t ancount = get16(b, 6);
  size_t at = 12;
  while (true) {  // question name: plain labels (the server echoes ours)
    REQUIRE(at < b.size());
    const uint8_t len = b[at++];
    if (len == 0) break;
    at += len;
  }
  at += 4;  // QTYPE, QCLASS
  for (uint16_t i = 0; i < ancount; ++i) {
    REQUIRE(get16(b, at) == 0xC00C);  // owner: pointer to the question
    Record rec;
    rec.type = get16(b, at + 2);
    REQUIRE(get16(b, at + 4) == 1);
    rec.ttl = get32(b, at + 6);
    const uint16_t rdlength = get16(b, at + 10);
    at += 12;
    REQUIRE(at + rdlength <= b.size());
    rec.rdata.assign(b.begin() + static_cast<ptrdiff_t>(at),
                     b.begin() + static_cast<ptrdiff_t>(at + rdlength));
    at += rdlength;
    r.answers.push_back(std::move(rec));
  }
  return r;
}

Bytes rdata_of(const IpAddress& a) {
  return Bytes(a.bytes.begin(), a.bytes.begin() + (a.v6 ? 16 : 4));
}

// The server's socket, bound as the supervisor would bind it (here on loopback, port chosen by
// the kernel).
std::pair<UniqueFd, uint16_t> bind_server_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return {std::move(fd), ntohs(addr.sin_port)};
}

// A sandboxed stub resolver: a UDP socket connected to the server.
class Client {
 public:
  explicit Client(uint16_t port) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_.valid());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    REQUIRE(::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  }

  void send(const Bytes& datagram) {
    REQUIRE(::send(fd_.get(), datagram.data(), datagram.size(), 0) ==
            static_cast<ssize_t>(datagram.size()));
  }

  std::optional<Bytes> receive(int timeout_ms) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    Bytes buf(4096);
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    REQUIRE(n >= 0);
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

  Reply ask(uint16_t id, std::string_view name, uint16_t qtype) {
    send(make_query(id, name, qtype));
    auto bytes = receive(kReplyWaitMs);
    REQUIRE(bytes.has_value());
    Reply r = parse_reply(*bytes);
    REQUIRE(r.id == id);
    return r;
  }

 private:
  UniqueFd fd_;
};

// A DnsServer on its own io thread, with a recording denied-name callback.
class Harness {
 public:
  Harness(NameAllowed allowed, Resolve resolve, size_t pin_capacity = 4096)
      : pins_(std::make_shared<PinTable>(pin_capacity)) {
    auto [fd, port] = bind_server_socket();
    port_ = port;
    server_ = std::make_unique<DnsServer>(
        io_, fd.release(), std::move(allowed), std::move(resolve), pins_,
        [this](const std::string& name, uint16_t qtype) {
          std::lock_guard lock(mu_);
          denied_.emplace_back(name, qtype);
        });
    server_->start();
    runner_ = std::thread([this] { io_.run(); });
  }

  ~Harness() {
    // The server is destroyed with the io context stopped, as its contract asks.
    io_.stop();
    runner_.join();
    server_.reset();
  }

  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] PinTable& pins() { return *pins_; }
  [[nodiscard]] std::vector<std::pair<std::string, uint16_t>> denied() {
    std::lock_guard lock(mu_);
    return denied_;
  }

 private:
  boost::asio::io_context io_;
  std::shared_ptr<PinTable> pins_;
  std::unique_ptr<DnsServer> server_;
  std::thread runner_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::vector<std::pair<std::string, uint16_t>> denied_;
};

NameAllowed allow_only(std::string allowed) {
  return [allowed = std::move(allowed)](const std::string& name) { return name == allowed; };
}

Resolve resolve_to(std::vector<IpAddress> addrs) {
  return [addrs = std::move(addrs)](const std::string&) { return addrs; };
}

}  // namespace

TEST_CASE("an allowed name is answered with the resolved address, pinned first", "[dns_server]") {
  std::mutex mu;
  std::vector<std::string> asked;
  Harness h(
      [&](const std::string& name) {
        std::lock_guard lock(mu);
        asked.push_back(name);
        return name == "example.com";
      },
      resolve_to({ip("93.184.216.34")}));
  Client c(h.port());

  // Mixed case, as a DNS 0x20 resolver sends it: the policy sees the normalised name.
  const Reply r = c.ask(0x4242, "Example.COM", kA);
  CHECK(r.rcode == kRcodeNoError);
  CHECK((r.flags & 0x8000) != 0);  // QR
  CHECK((r.flags & 0x0400) != 0);  // AA
  REQUIRE(r.answers.size() == 1);
  CHECK(r.answers[0].type == kA);
  CHECK(r.answers[0].ttl == 60);
  CHECK(r.answers[0].rdata == rdata_of(ip("93.184.216.34")));
  CHECK(h.pins().name_for(ip("93.184.216.34")) == std::optional<std::string>("example.com"));
  {
    std::lock_guard lock(mu);
    CHECK(asked == std::vector<std::string>{"example.com"});
  }
  CHECK(h.denied().empty());
}

TEST_CASE("AAAA for a name with only IPv4 addresses is NODATA", "[dns_server]") {
  Harness h(allow_only("example.com"), resolve_to({ip("93.184.216.34")}));
  Client c(h.port());
  const Reply r = c.ask(7, "example.com", kAaaa);
  CHECK(r.rcode == kRcodeNoError);
  CHECK(r.answers.empty());
  CHECK(h.pins().size() == 0);  // nothing was told to the client, nothing to pin
}

TEST_CASE("each address query gets only its own family, and pins only that", "[dns_server]") {
  Harness h(allow_only("dual.example"),
            resolve_to({ip("2001:db8::1"), ip("192.0.2.1"), ip("2001:db8::2")}));
  Client c(h.port());

  const Reply six = c.ask(1, "dual.example", kAaaa);
  CHECK(six.rcode == kRcodeNoError);
  REQUIRE(six.answers.size() == 2);
  CHECK(six.answers[0].type == kAaaa);
  CHECK(six.answers[0].rdata == rdata_of(ip("2001:db8::1")));
  CHECK(six.answers[1].rdata == rdata_of(ip("2001:db8::2")));
  CHECK(h.pins().size() == 2);
  CHECK_FALSE(h.pins().name_for(ip("192.0.2.1")).has_value());

  const Reply four = c.ask(2, "dual.example", kA);
  REQUIRE(four.answers.size() == 1);
  CHECK(four.answers[0].rdata == rdata_of(ip("192.0.2.1")));
  CHECK(h.pins().name_for(ip("192.0.2.1")) == std::optional<std::string>("dual.example"));
}

TEST_CASE("a denied name gets NXDOMAIN and is reported, never resolved", "[dns_server]") {
  // Built here: Catch assertions (inside ip()) are not thread-safe, and resolvers run on other
  // threads.
  const IpAddress other = ip("192.0.2.1");
  bool resolved = false;  // written on a resolver thread only if the server misbehaves
  std::mutex mu;
  Harness h(allow_only("example.com"), [&](const std::string&) {
    std::lock_guard lock(mu);
    resolved = true;
    return std::vector<IpAddress>{other};
  });
  Client c(h.port());

  const Reply r = c.ask(9, "evil.example.net", kA);
  CHECK(r.rcode == kRcodeNxDomain);
  CHECK(r.answers.empty());
  const auto denied = h.denied();
  REQUIRE(denied.size() == 1);
  CHECK(denied[0].first == "evil.example.net");
  CHECK(denied[0].second == kA);
  std::lock_guard lock(mu);
  CHECK_FALSE(resolved);
  CHECK(h.pins().size() == 0);
}

TEST_CASE("a malformed datagram gets no reply and the server keeps serving", "[dns_server]") {
  Harness h(allow_only("example.com"), resolve_to({ip("93.184.216.34")}));
  Client c(h.port());

  Bytes response = make_query(1, "example.com", kA);
  response[2] |= 0x80;  // QR set: a response, not a query
  Bytes two_questions = make_query(2, "example.com", kA);
  two_questions[5] = 2;  // QDCOUNT 2
  const std::vector<Bytes> garbage = {
      Bytes{},
      Bytes{0x01, 0x02, 0x03},
      Bytes(600, 0xFF),
      response,
      two_questions,
      Bytes(5000, 0x00),  // longer than any query
  };
  for (const Bytes& g : garbage) c.send(g);
  CHECK_FALSE(c.receive(kSilenceWaitMs).has_value());

  // Datagrams are handled in arrival order and a reply to garbage would be immediate, so the
  // first reply now must be the one to this query.
  const Reply r = c.ask(0x77, "example.com", kA);
  CHECK(r.rcode == kRcodeNoError);
  CHECK(r.answers.size() == 1);
  CHECK(h.denied().empty());
}

TEST_CASE("resolver failure is SERVFAIL, a name without addresses is NXDOMAIN", "[dns_server]") {
  Harness h([](const std::string&) { return true; },
            [](const std::string& name) -> std::vector<IpAddress> {
              if (name == "broken.example") throw std::runtime_error("resolver unreachable");
              return {};
            });
  Client c(h.port());

  CHECK(c.ask(1, "broken.example", kA).rcode == kRcodeServFail);
  CHECK(c.ask(2, "missing.example", kA).rcode == kRcodeNxDomain);
  CHECK(c.ask(3, "missing.example", kAaaa).rcode == kRcodeNxDomain);
  CHECK(h.pins().size() == 0);
  CHECK(h.denied().empty());  // allowed names that fail are not policy denials
}

TEST_CASE("a policy check that throws is SERVFAIL for that query only", "[dns_server]") {
  Harness h(
      [](const std::string& name) {
        if (name == "boom.example") throw std::runtime_error("policy unavailable");
        return true;
      },
      resolve_to({ip("192.0.2.9")}));
  Client c(h.port());
  CHECK(c.ask(1, "boom.example", kA).rcode == kRcodeServFail);
  CHECK(c.ask(2, "fine.example", kA).answers.size() == 1);
}

TEST_CASE("other query types are NODATA without a resolution", "[dns_server]") {
  const IpAddress other = ip("192.0.2.1");
  std::mutex mu;
  int resolutions = 0;
  Harness h(allow_only("example.com"), [&](const std::string&) {
    std::lock_guard lock(mu);
    ++resolutions;
    return std::vector<IpAddress>{other};
  });
  Client c(h.port());
  const Reply r = c.ask(5, "example.com", kMx);
  CHECK(r.rcode == kRcodeNoError);
  CHECK(r.answers.empty());
  std::lock_guard lock(mu);
  CHECK(resolutions == 0);
}

TEST_CASE("resolutions in flight are bounded; beyond the bound the answer is SERVFAIL",
          "[dns_server]") {
  // The fake resolver blocks until released, so the test decides exactly how many are running.
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    size_t entered = 0;
    bool open = false;
    void release() {
      std::lock_guard lock(mu);
      open = true;
      cv.notify_all();
    }
  } gate;
  const IpAddress slow = ip("192.0.2.7");
  Harness h(allow_only("slow.example"), [&](const std::string&) {
    std::unique_lock lock(gate.mu);
    ++gate.entered;
    gate.cv.notify_all();
    gate.cv.wait(lock, [&] { return gate.open; });
    return std::vector<IpAddress>{slow};
  });
  // Destroyed before the harness, so a failed REQUIRE cannot leave resolvers blocked forever
  // while ~DnsServer waits for them.
  struct Releaser {
    Gate& g;
    ~Releaser() { g.release(); }
  } releaser{gate};
  Client c(h.port());

  for (uint16_t id = 1; id <= DnsServer::kMaxInFlight; ++id) {
    c.send(make_query(id, "slow.example", kA));
  }
  {
    std::unique_lock lock(gate.mu);
    REQUIRE(gate.cv.wait_for(lock, std::chrono::milliseconds(kReplyWaitMs),
                             [&] { return gate.entered == DnsServer::kMaxInFlight; }));
  }
  const Reply over = c.ask(100, "slow.example", kA);
  CHECK(over.rcode == kRcodeServFail);

  gate.release();
  std::vector<bool> seen(DnsServer::kMaxInFlight + 1, false);
  for (size_t i = 0; i < DnsServer::kMaxInFlight; ++i) {
    auto bytes = c.receive(kReplyWaitMs);
    REQUIRE(bytes.has_value());
    const Reply r = parse_reply(*bytes);
    REQUIRE(r.id >= 1);
    REQUIRE(r.id <= DnsServer::kMaxInFlight);
    CHECK_FALSE(seen[r.id]);
    seen[r.id] = true;
    CHECK(r.rcode == kRcodeNoError);
    CHECK(r.answers.size() == 1);
  }
  // The slots are free again.
  CHECK(c.ask(101, "slow.example", kA).answers.size() == 1);
}

TEST_CASE("the pin table evicts the oldest pin at capacity", "[dns_server][pin_table]") {
  PinTable pins(3);
  pins.pin(ip("192.0.2.1"), "one.example");
  pins.pin(ip("192.0.2.2"), "two.example");
  pins.pin(ip("192.0.2.3"), "three.example");
  CHECK(pins.size() == 3);

  pins.pin(ip("192.0.2.4"), "four.example");
  CHECK(pins.size() == 3);
  CHECK_FALSE(pins.name_for(ip("192.0.2.1")).has_value());
  CHECK(pins.name_for(ip("192.0.2.2")) == std::optional<std::string>("two.example"));
  CHECK(pins.name_for(ip("192.0.2.4")) == std::optional<std::string>("four.example"));

  SECTION("re-pinning refreshes an address and takes the newest name") {
    pins.pin(ip("192.0.2.2"), "cdn.example");
    pins.pin(ip("192.0.2.5"), "five.example");
    CHECK(pins.size() == 3);
    CHECK_FALSE(pins.name_for(ip("192.0.2.3")).has_value());  // now the oldest, so evicted
    CHECK(pins.name_for(ip("192.0.2.2")) == std::optional<std::string>("cdn.example"));
  }
}

TEST_CASE("the pin table keeps IPv4 and IPv6 addresses apart", "[dns_server][pin_table]") {
  PinTable pins;
  IpAddress v6_with_v4_bytes = ip("192.0.2.1");
  v6_with_v4_bytes.v6 = true;  // same sixteen bytes, other family
  pins.pin(ip("192.0.2.1"), "four.example");
  pins.pin(v6_with_v4_bytes, "six.example");
  CHECK(pins.size() == 2);
  CHECK(pins.name_for(ip("192.0.2.1")) == std::optional<std::string>("four.example"));
  CHECK(pins.name_for(v6_with_v4_bytes) == std::optional<std::string>("six.example"));
  CHECK_FALSE(pins.name_for(ip("::1")).has_value());
}

TEST_CASE("a pin table of capacity zero still keeps the latest pin", "[dns_server][pin_table]") {
  PinTable pins(0);
  pins.pin(ip("192.0.2.1"), "a.example");
  pins.pin(ip("192.0.2.2"), "b.example");
  CHECK(pins.size() == 1);
  CHECK(pins.name_for(ip("192.0.2.2")) == std::optional<std::string>("b.example"));
}

TEST_CASE("the host resolver refuses names that are numeric addresses", "[dns_server]") {
  // Refused before getaddrinfo runs, so this needs no network.
  for (const char* name : {"127.1", "0x7f000001", "2130706433", "10.0.0.1", ""}) {
    INFO(name);
    CHECK(resolve_with_host(name).empty());
  }
}

TEST_CASE("the host resolver answers names from the hosts file, exactly as asked", "[dns_server]") {
  // Issue 13.2: the resolver asks getaddrinfo for "name." (no search list), which glibc's files
  // backend never matches; the hosts file is read first, by name, so these need no network.
  char path[] = "/tmp/osh-hosts-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string text = "10.20.30.40 registry.corp.example registry\nfd00::7 models.internal\n";
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  CHECK(resolve_with_host("registry", path) == std::vector<IpAddress>{ip("10.20.30.40")});
  CHECK(resolve_with_host("registry.corp.example", path) ==
        std::vector<IpAddress>{ip("10.20.30.40")});
  CHECK(resolve_with_host("models.internal", path) == std::vector<IpAddress>{ip("fd00::7")});
  ::unlink(path);
}

TEST_CASE("the server refuses a socket that is not a datagram socket", "[dns_server]") {
  boost::asio::io_context io;
  const int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(tcp >= 0);
  // The server owns the fd even when it refuses it (and closes it).
  CHECK_THROWS(DnsServer(io, tcp, allow_only("x"), resolve_to({}), std::make_shared<PinTable>(),
                         [](const std::string&, uint16_t) {}));
}

TEST_CASE("NameCache keeps answers (and no-such-name) until they expire, within its capacity") {
  NameCache cache(std::chrono::hours(1), 2);
  CHECK_FALSE(cache.find("a.test").has_value());
  cache.store("a.test", {ip("10.0.0.1")});
  cache.store("gone.test", {});  // "no such name" is an answer too
  REQUIRE(cache.find("a.test").has_value());
  CHECK(cache.find("a.test")->front() == ip("10.0.0.1"));
  REQUIRE(cache.find("gone.test").has_value());
  CHECK(cache.find("gone.test")->empty());
  // Replacing an entry does not count against the capacity.
  cache.store("a.test", {ip("10.0.0.2")});
  CHECK(cache.size() == 2);
  CHECK(cache.find("a.test")->front() == ip("10.0.0.2"));
  // Full, nothing expired: the table starts over rather than growing.
  cache.store("b.test", {ip("10.0.0.3")});
  CHECK(cache.size() == 1);
  CHECK(cache.find("b.test").has_value());
  CHECK_FALSE(cache.find("a.test").has_value());

  NameCache expired(std::chrono::seconds(0));
  expired.store("a.test", {ip("10.0.0.1")});
  CHECK_FALSE(expired.find("a.test").has_value());
}
