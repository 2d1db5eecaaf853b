// upstream_server ADDR PORT MODE [SECONDS] : a tiny TCP server that egress-proxy tests dial
// through the proxy. It runs inside a network namespace the test creates (tests/support/
// upstream.hpp), never on a real network. ADDR is a numeric IPv4 or IPv6 literal.
//
// MODE is one of
//   http     read one request head (at most 16 KiB), answer 200 with the body
//            "upstream ok: METHOD TARGET host=HOST\n", close
//   http-keepalive  the same, but answer request after request on one connection (each reply
//            says "Connection: keep-alive" and has a Content-Length) until the client closes
//   echo     send every byte back until the client closes (CONNECT tunnels, throughput)
//   bulk N   send N MiB of zeros, then close (throughput benchmarks); N in 1..4096
//
// Prints "listening ADDR:PORT" once it accepts connections, one "request METHOD TARGET host=HOST
// peer=ADDR conn=N" line per HTTP request (so a test can tell whether a request reached the
// upstream at all, and N, the connection's number in accept order, whether requests shared one), and "served N" at exit; every line flushed. Exits 0 after SECONDS (default 60), 1 if it
// cannot listen, 2 on bad arguments. One thread, poll(): at most 64 clients at a time (more wait
// in the backlog), and a connection idle for 10 s (2 s once the server's side is done) is
// dropped, so nothing here blocks forever.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "probe_output.hpp"

namespace {

using openshell::probe::errno_name;
using openshell::probe::parse_long;
using openshell::probe::usage_exit;

constexpr const char* kUsage =
    "upstream_server ADDR PORT http|http-keepalive|echo|bulk N [SECONDS] (ADDR numeric IPv4 or "
    "IPv6)";
constexpr std::size_t kMaxClients = 64;
constexpr std::size_t kMaxHead = 16UL * 1024;
constexpr long kIdleTimeoutMs = 10L * 1000;
// After our side is done, a client that neither reads nor closes would hold one of the 64 slots
// for the full idle timeout; lingering this long is enough to keep the reply from a RST.
constexpr long kDrainTimeoutMs = 2L * 1000;
constexpr long kDefaultSeconds = 60;
// Echo stops reading while this much is still unsent, so a client that writes without reading
// costs us a bounded buffer rather than unbounded memory.
constexpr std::size_t kEchoBacklog = 256UL * 1024;
constexpr std::size_t kChunk = 64UL * 1024;

enum class Mode { kHttp, kHttpKeepAlive, kEcho, kBulk };

bool is_http(Mode mode) { return mode == Mode::kHttp || mode == Mode::kHttpKeepAlive; }

enum class Phase {
  kServing,   // reading the request / echoing / sending the bulk payload
  kFlushing,  // the reply is complete in out; close once it is sent
  kDraining,  // our side is shut; read and discard until the client closes
};

struct Client {
  int fd = -1;
  std::string peer;
  long serial = 0;  // 1 for the first connection accepted, and so on
  Phase phase = Phase::kServing;
  std::string in;   // http: the request head so far
  std::string out;  // bytes still to send (http reply, echo backlog)
  std::size_t out_sent = 0;
  std::uint64_t bulk_left = 0;  // bulk: zero bytes still to send
  bool peer_closed = false;     // echo, bulk: the client shut its sending side
  long last_activity_ms = 0;
};

long idle_limit_ms(const Client& c) {
  return c.phase == Phase::kDraining ? kDrainTimeoutMs : kIdleTimeoutMs;
}

long now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

std::string peer_name(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, text, sizeof text);
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, text,
              sizeof text);
  }
  return text;
}

bool iequals(const std::string& a, const char* b) { return strcasecmp(a.c_str(), b) == 0; }

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

std::string http_reply(const char* status, const std::string& body, bool keep_alive = false) {
  return std::string("HTTP/1.1 ") + status + "\r\nContent-Type: text/plain\r\nConnection: " +
         (keep_alive ? "keep-alive" : "close") +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Builds the reply for a complete head (ending in CRLFCRLF) and logs the request.
std::string answer_head(const std::string& head, const Client& c, bool keep_alive) {
  const auto line_end = head.find("\r\n");
  const std::string request_line = head.substr(0, line_end);
  const auto sp1 = request_line.find(' ');
  const auto sp2 = sp1 == std::string::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return http_reply("400 Bad Request", "bad request line\n");
  const std::string method = request_line.substr(0, sp1);
  const std::string target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string host;
  std::size_t pos = line_end + 2;
  while (pos < head.size()) {
    const auto end = head.find("\r\n", pos);
    if (end == std::string::npos || end == pos) break;
    const std::string line = head.substr(pos, end - pos);
    const auto colon = line.find(':');
    if (colon != std::string::npos && iequals(trim(line.substr(0, colon)), "host")) {
      host = trim(line.substr(colon + 1));
      break;
    }
    pos = end + 2;
  }
  std::printf("request %s %s host=%s peer=%s conn=%ld\n", method.c_str(), target.c_str(),
              host.c_str(), c.peer.c_str(), c.serial);
  std::fflush(stdout);
  return http_reply("200 OK", "upstream ok: " + method + " " + target + " host=" + host + "\n",
                    keep_alive);
}

// Our side is done: the client sees EOF, and we read until it closes so that unread request
// bytes never turn our close into a RST that could destroy the reply in flight.
void start_draining(Client& c) {
  shutdown(c.fd, SHUT_WR);
  c.phase = Phase::kDraining;
}

// Reads what is available; false once the connection should be closed.
bool on_readable(Client& c, Mode mode) {
  char buf[kChunk];
  const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) {
    // http: closed before a complete head, nothing to answer.
    if (c.phase == Phase::kDraining || is_http(mode)) return false;
    // echo, bulk: a half-close is a normal end of the request side; finish sending what is
    // due (the echo backlog, the rest of the payload), then close.
    c.peer_closed = true;
    if (mode == Mode::kEcho) {
      if (c.out.size() == c.out_sent) return false;
      c.phase = Phase::kFlushing;
    }
    return true;
  }
  const auto got = static_cast<std::size_t>(n);
  if (c.phase == Phase::kDraining) return true;
  if (mode == Mode::kEcho) {
    c.out.append(buf, got);
    return true;
  }
  if (mode == Mode::kHttpKeepAlive) {
    c.in.append(buf, got);
    // Every complete head is answered in turn (pipelined ones too); the connection stays.
    for (auto end = c.in.find("\r\n\r\n"); end != std::string::npos && end + 4 <= kMaxHead;
         end = c.in.find("\r\n\r\n")) {
      c.out += answer_head(c.in.substr(0, end + 4), c, true);
      c.in.erase(0, end + 4);
    }
    if (c.in.size() >= kMaxHead) {
      c.out += http_reply("431 Request Header Fields Too Large", "request head too large\n");
      c.phase = Phase::kFlushing;
    }
    return true;
  }
  if (mode == Mode::kHttp && c.phase == Phase::kServing) {
    c.in.append(buf, got);
    const auto end = c.in.find("\r\n\r\n");
    if (end != std::string::npos && end + 4 <= kMaxHead) {
      c.out = answer_head(c.in.substr(0, end + 4), c, false);
      c.phase = Phase::kFlushing;
    } else if (c.in.size() >= kMaxHead) {
      c.out = http_reply("431 Request Header Fields Too Large", "request head too large\n");
      c.phase = Phase::kFlushing;
    }
  }
  return true;  // bulk ignores what the client sends
}

// Sends what is pending; false once the connection should be closed.
bool on_writable(Client& c) {
  static constexpr char kZeros[kChunk] = {};
  if (c.out_sent < c.out.size()) {
    const ssize_t n =
        send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.out_sent += static_cast<std::size_t>(n);
    if (c.out_sent == c.out.size()) {
      c.out.clear();
      c.out_sent = 0;
    }
  } else if (c.bulk_left > 0) {
    const std::size_t len = c.bulk_left < kChunk ? static_cast<std::size_t>(c.bulk_left) : kChunk;
    const ssize_t n = send(c.fd, kZeros, len, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.bulk_left -= static_cast<std::uint64_t>(n);
  }
  return true;
}

bool wants_write(const Client& c) { return !c.out.empty() || c.bulk_left > 0; }

bool wants_read(const Client& c, Mode mode) {
  if (c.phase == Phase::kDraining) return true;
  if (c.peer_closed) return false;
  if (mode == Mode::kEcho) return c.out.size() < kEchoBacklog;
  if (mode == Mode::kHttpKeepAlive) return c.phase == Phase::kServing && c.out.size() < kEchoBacklog;
  return c.phase == Phase::kServing;
}

int listen_on(const char* host, long port) {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (!openshell::probe::numeric_address(host, port, &addr, &addr_len)) usage_exit(kUsage);
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // An IPv6 listener answers IPv6 only; the IPv4 address gets its own server.
  if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) == -1 || listen(fd, 128) == -1) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) usage_exit(kUsage);
  const char* host = argv[1];
  long port = 0;
  if (!parse_long(argv[2], 1, 65535, &port)) usage_exit(kUsage);
  const std::string mode_name = argv[3];
  Mode mode = Mode::kHttp;
  long bulk_mib = 0;
  int next_arg = 4;
  if (mode_name == "http") {
    mode = Mode::kHttp;
  } else if (mode_name == "http-keepalive") {
    mode = Mode::kHttpKeepAlive;
  } else if (mode_name == "echo") {
    mode = Mode::kEcho;
  } else if (mode_name == "bulk") {
    mode = Mode::kBulk;
    if (argc < 5 || !parse_long(argv[4], 1, 4096, &bulk_mib)) usage_exit(kUsage);
    next_arg = 5;
  } else {
    usage_exit(kUsage);
  }
  long seconds = kDefaultSeconds;
  if (argc > next_arg + 1) usage_exit(kUsage);
  if (argc == next_arg + 1 && !parse_long(argv[next_arg], 1, 3600, &seconds)) usage_exit(kUsage);

  const int listener = listen_on(host, port);
  if (listener == -1) {
    std::printf("listen %s:%s errno=%s\n", host, argv[2], errno_name(errno));
    return 1;
  }
  std::printf("listening %s:%s\n", host, argv[2]);
  std::fflush(stdout);

  const long stop_at = now_ms() + seconds * 1000L;
  std::vector<Client> clients;
  clients.reserve(kMaxClients);
  std::vector<pollfd> fds;
  long served = 0;
  for (;;) {
    const long now = now_ms();
    if (now >= stop_at) break;
    long wait_ms = stop_at - now;
    fds.clear();
    // Leave the listener out at the cap: further clients queue in the backlog meanwhile.
    fds.push_back({listener, static_cast<short>(clients.size() < kMaxClients ? POLLIN : 0), 0});
    for (const Client& c : clients) {
      short events = 0;
      if (wants_read(c, mode)) events |= POLLIN;
      if (wants_write(c)) events |= POLLOUT;
      fds.push_back({c.fd, events, 0});
      const long idle_left = c.last_activity_ms + idle_limit_ms(c) - now;
      if (idle_left < wait_ms) wait_ms = idle_left < 0 ? 0 : idle_left;
    }
    const int ready = poll(fds.data(), fds.size(), static_cast<int>(wait_ms));
    if (ready < 0 && errno != EINTR) break;
    const long after = now_ms();

    // Serve existing clients before accepting, so indexes in fds still match clients.
    for (std::size_t i = 0; i < clients.size(); ++i) {
      Client& c = clients[i];
      const int revents = ready > 0 ? fds[i + 1].revents : 0;
      bool keep = true;
      if (revents != 0) {
        c.last_activity_ms = after;
        // POLLHUP: both directions are shut (our SHUT_WR and the client's FIN, or a reset), so
        // nothing more can be sent or received.
        if ((revents & (POLLHUP | POLLERR)) != 0) keep = false;
        if (keep && (revents & POLLIN) != 0) keep = on_readable(c, mode);
        if (keep && (revents & POLLOUT) != 0) keep = on_writable(c);
        // Done sending: the reply is out, the echo backlog is flushed after the client's EOF, or
        // the bulk payload is complete.
        if (keep && !wants_write(c) &&
            (c.phase == Phase::kFlushing || (c.phase == Phase::kServing && mode == Mode::kBulk))) {
          start_draining(c);
        }
      } else if (after - c.last_activity_ms >= idle_limit_ms(c)) {
        keep = false;
      }
      if (!keep) {
        close(c.fd);
        c.fd = -1;
      }
    }
    std::erase_if(clients, [](const Client& c) { return c.fd == -1; });

    if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
      while (clients.size() < kMaxClients) {
        sockaddr_storage peer{};
        socklen_t peer_len = sizeof peer;
        const int fd = accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) break;  // EAGAIN: backlog empty; anything else: try again next round
        Client c;
        c.fd = fd;
        c.peer = peer_name(peer);
        c.serial = served + 1;
        c.last_activity_ms = after;
        if (mode == Mode::kBulk) c.bulk_left = static_cast<std::uint64_t>(bulk_mib) << 20;
        clients.push_back(std::move(c));
        ++served;
      }
    }
  }
  for (const Client& c : clients) close(c.fd);
  close(listener);
  std::printf("served %ld\n", served);
  std::fflush(stdout);
  return 0;
}
