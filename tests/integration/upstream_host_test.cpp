// UpstreamHost and upstream_server: the upstreams that egress-proxy tests dial must answer from
// their own namespace over the veth, on non-loopback test addresses, and leave nothing behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/unique_fd.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/upstream.hpp"

using namespace openshell::testing;
using openshell::UniqueFd;

namespace {

constexpr int kIoTimeoutMs = 10000;

struct Connection {
  UniqueFd fd;
  int error = 0;  // errno of a failed connect, 0 on success
};

long ms_left(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::steady_clock::now())
      .count();
}

// A non-blocking TCP connection from the host namespace; the connect waits at most 5 s.
Connection connect_to(const std::string& addr, std::uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    return {UniqueFd(), EINVAL};
  }
  Connection c{UniqueFd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)), 0};
  if (!c.fd) return {UniqueFd(), errno};
  if (connect(c.fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) == 0) return c;
  if (errno != EINPROGRESS) return {UniqueFd(), errno};
  pollfd pfd{c.fd.get(), POLLOUT, 0};
  if (poll(&pfd, 1, 5000) != 1) return {UniqueFd(), ETIMEDOUT};
  int err = 0;
  socklen_t err_len = sizeof err;
  getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len);
  if (err != 0) return {UniqueFd(), err};
  return c;
}

// Sends `data`, half-closes, and returns everything received until the server closes. Writes
// and reads interleave, so an echo larger than the socket buffers cannot deadlock; the whole
// exchange is bounded by kIoTimeoutMs.
std::string exchange(int fd, const std::string& data) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kIoTimeoutMs);
  std::string received;
  std::size_t sent = 0;
  bool write_open = true;
  for (;;) {
    if (write_open && sent == data.size()) {
      shutdown(fd, SHUT_WR);
      write_open = false;
    }
    const long left = ms_left(deadline);
    if (left <= 0) break;
    pollfd pfd{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    if ((pfd.revents & POLLOUT) != 0) {
      const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char buf[65536];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n == 0) break;  // the server closed
      if (n < 0 && errno != EAGAIN && errno != EINTR) break;
      if (n > 0) received.append(buf, static_cast<std::size_t>(n));
    }
  }
  return received;
}

std::string http_get(const std::string& addr, std::uint16_t port, const std::string& target,
                     const std::string& host) {
  Connection c = connect_to(addr, port);
  if (!c.fd) return "connect errno=" + std::to_string(c.error);
  return exchange(c.fd.get(), "GET " + target + " HTTP/1.1\r\nHost: " + host +
                                  "\r\nUser-Agent: upstream_host_test\r\n\r\n");
}

std::string body_of(const std::string& reply) {
  const auto end = reply.find("\r\n\r\n");
  return end == std::string::npos ? "" : reply.substr(end + 4);
}

bool netns_listed(const std::string& name) {
  const std::string list = run_process({"/usr/sbin/ip", "netns", "list"}).out;
  // One namespace per line, "name" or "name (id: N)".
  std::size_t pos = 0;
  while ((pos = list.find(name, pos)) != std::string::npos) {
    const bool starts_line = pos == 0 || list[pos - 1] == '\n';
    const std::size_t after = pos + name.size();
    const bool ends_name = after == list.size() || list[after] == '\n' || list[after] == ' ';
    if (starts_line && ends_name) return true;
    pos = after;
  }
  return false;
}

bool link_exists(const std::string& name) {
  return run_process({"/usr/sbin/ip", "link", "show", "dev", name}).exit_code == 0;
}

}  // namespace

TEST_CASE("an upstream in http mode answers from its own namespace") {
  UpstreamHost up;
  up.start(8080, "http");
  REQUIRE(up.address().rfind("10.77.", 0) == 0);

  const std::string reply = http_get(up.address(), 8080, "/hello?x=1", "api.example.test");
  CHECK(reply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(reply.find("\r\nContent-Type: text/plain\r\n") != std::string::npos);
  CHECK(reply.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(body_of(reply) == "upstream ok: GET /hello?x=1 host=api.example.test\n");
  // The request came over the veth from the host side, not over loopback.
  CHECK(up.server_output().find("request GET /hello?x=1 host=api.example.test peer=" +
                                up.host_address() + " conn=1\n") != std::string::npos);
  // The server's address lives in the namespace only: the host has just the other end.
  const std::string host_addrs = run_process({"/usr/sbin/ip", "-o", "addr", "show"}).out;
  CHECK(host_addrs.find(" " + up.address() + "/") == std::string::npos);
  CHECK(host_addrs.find(" " + up.host_address() + "/30") != std::string::npos);

  if (up.address6().empty()) {
    WARN("IPv6 is disabled on this kernel; only IPv4 was checked");
  } else {
    CHECK(up.address6().rfind("fd77:", 0) == 0);
    const std::string reply6 = http_get(up.address6(), 8080, "/v6", "v6.example.test");
    CHECK(reply6.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(body_of(reply6) == "upstream ok: GET /v6 host=v6.example.test\n");
    CHECK(up.server_output().find("peer=" + up.host_address6() + " conn=1\n") !=
          std::string::npos);
  }
}

TEST_CASE("http mode refuses a request head over 16 KiB") {
  UpstreamHost up;
  up.start(8080, "http");
  Connection c = connect_to(up.address(), 8080);
  REQUIRE(c.fd);
  const std::string head =
      "GET / HTTP/1.1\r\nHost: big.example.test\r\nX-Pad: " + std::string(20UL * 1024, 'a') +
      "\r\n\r\n";
  const std::string reply = exchange(c.fd.get(), head);
  CHECK(reply.rfind("HTTP/1.1 431 ", 0) == 0);
  CHECK(up.server_output().find("request ") == std::string::npos);
}

TEST_CASE("echo mode returns every byte until the client closes") {
  UpstreamHost up;
  up.start(9000, "echo");
  {
    Connection c = connect_to(up.address(), 9000);
    REQUIRE(c.fd);
    CHECK(exchange(c.fd.get(), "hello through the tunnel\n") == "hello through the tunnel\n");
  }
  // Larger than any socket buffer, with a pattern that shows reordering or loss.
  std::string data(4UL * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131 + 7) % 251);
  Connection c = connect_to(up.address(), 9000);
  REQUIRE(c.fd);
  const std::string back = exchange(c.fd.get(), data);
  CHECK(back.size() == data.size());
  CHECK(back == data);

  if (!up.address6().empty()) {
    Connection c6 = connect_to(up.address6(), 9000);
    REQUIRE(c6.fd);
    CHECK(exchange(c6.fd.get(), "over ipv6") == "over ipv6");
  }
}

TEST_CASE("bulk mode sends N MiB of zeros, then closes") {
  UpstreamHost up;
  up.start(9001, "bulk 3");
  Connection c = connect_to(up.address(), 9001);
  REQUIRE(c.fd);
  const std::string got = exchange(c.fd.get(), "");
  CHECK(got.size() == 3UL * 1024 * 1024);
  CHECK(got.find_first_not_of('\0') == std::string::npos);
}

TEST_CASE("the server serves many clients at once") {
  UpstreamHost up;
  up.start(8080, "http");
  // All connections are open before any request is sent, so the server holds them together.
  std::vector<Connection> conns;
  for (int i = 0; i < 20; ++i) {
    conns.push_back(connect_to(up.address(), 8080));
    REQUIRE(conns.back().fd);
  }
  for (std::size_t i = 0; i < conns.size(); ++i) {
    const std::string target = "/c" + std::to_string(i);
    const std::string reply = exchange(
        conns[i].fd.get(), "POST " + target + " HTTP/1.1\r\nhost: many.example.test\r\n\r\n");
    CHECK(body_of(reply) == "upstream ok: POST " + target + " host=many.example.test\n");
  }
}

TEST_CASE("a server stops by itself when its time is up") {
  UpstreamHost up;
  up.start(8080, "http", /*seconds=*/1);
  CHECK(body_of(http_get(up.address(), 8080, "/", "t.example.test")) ==
        "upstream ok: GET / host=t.example.test\n");
  // Wait on its exit line rather than by connecting: every connection it accepts counts.
  REQUIRE(
      eventually([&] { return up.server_output().find("served ") != std::string::npos; }, 5000));
  CHECK(up.server_output().find("served 1\n") != std::string::npos);
  CHECK(connect_to(up.address(), 8080).error == ECONNREFUSED);
}

TEST_CASE("destroying an UpstreamHost removes its namespace and veth") {
  std::string netns, veth, host_address;
  {
    UpstreamHost up;
    up.start(8080, "echo");
    netns = up.netns();
    veth = up.veth();
    host_address = up.host_address();
    REQUIRE(netns_listed(netns));
    REQUIRE(link_exists(veth));
    CHECK(veth.size() <= 15);  // IFNAMSIZ - 1
  }
  CHECK_FALSE(netns_listed(netns));
  CHECK_FALSE(link_exists(veth));
  // No connect to the old address here: without the veth's route it would follow the host's
  // default route onto a real network. The routing table shows the /30 is gone instead.
  CHECK(run_process({"/usr/sbin/ip", "-o", "route", "show", "dev", veth}).out.empty());
  CHECK(run_process({"/usr/sbin/ip", "-o", "addr", "show"}).out.find(" " + host_address + "/") ==
        std::string::npos);
}

TEST_CASE("two UpstreamHosts in one process are separate hosts") {
  auto first = std::make_unique<UpstreamHost>();
  auto second = std::make_unique<UpstreamHost>();
  CHECK(first->address() != second->address());
  CHECK(first->host_address() != second->host_address());
  CHECK(first->netns() != second->netns());
  CHECK(first->veth() != second->veth());
  if (!first->address6().empty() && !second->address6().empty()) {
    CHECK(first->address6() != second->address6());
  }
  // Same port on both: each namespace has its own port space, and each answers for itself.
  first->start(80, "http");
  second->start(80, "echo");
  CHECK(body_of(http_get(first->address(), 80, "/one", "one.example.test")) ==
        "upstream ok: GET /one host=one.example.test\n");
  Connection c = connect_to(second->address(), 80);
  REQUIRE(c.fd);
  CHECK(exchange(c.fd.get(), "two") == "two");

  // Destroying one leaves the other intact.
  const std::string first_netns = first->netns();
  first.reset();
  CHECK_FALSE(netns_listed(first_netns));
  CHECK(netns_listed(second->netns()));
  Connection again = connect_to(second->address(), 80);
  REQUIRE(again.fd);
  CHECK(exchange(again.fd.get(), "still here") == "still here");
}
