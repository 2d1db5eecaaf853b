// http_load: a small closed-loop HTTP/1.1 load generator and a tunnel throughput meter, for
// bench/proxy_bench.sh. Linked static (like the probes in tests/helpers) so it runs inside a
// sandbox that has nothing of the host's libraries.
//
//   http_load --proxy ADDR:PORT|--direct ADDR:PORT --url http://HOST[:PORT]/PATH
//             [--connections C] [--requests N] [--seconds S] [--keepalive] [--post JSON]
//   http_load --tunnel ADDR:PORT --target HOST:PORT --bytes MIB [--seconds S]
//   http_load --direct ADDR:PORT --bytes MIB [--seconds S]
//
// Request mode sends N GETs (or POSTs of JSON with --post; absolute-form through --proxy, origin-form with --direct) over C
// connections, each connection sending its next request once the previous answer is complete
// (closed loop), from one thread with poll(). With --keepalive a connection is reused as long as
// the server keeps it open and re-opened when it closes; without it every request says
// "Connection: close". Latency is from issuing the request (including the connect when a new
// connection is needed) to the last byte of the answer. Prints
//
//   requests=OK seconds=S rps=R p50_us=.. p99_us=.. errors=E unfinished=U connects=K
//
// unfinished: requests still in flight when the time limit struck (neither counted nor errors);
// connects: connections opened, so connects/requests shows whether keep-alive held.
//
// Tunnel mode opens one CONNECT tunnel to TARGET through the proxy at ADDR:PORT (or, with
// --direct, one plain connection to ADDR:PORT), sends a short request line the way a
// client-first protocol would (a bulk server ignores it; without it the proxy waits its peek
// timeout for a TLS ClientHello that never comes), and reads MIB MiB. Prints
//
//   mib=M seconds=S mib_per_s=R
//
// Bounded: at most 1,000,000 requests, 256 connections, 4096 MiB and 60 s of wall time (less
// with --seconds); an answer that takes over 10 s is an error. Exit 0 when everything
// succeeded, 1 when a request failed or a transfer came up short, 2 on bad arguments.
// Addresses are numeric IPv4: the benchmark's hosts are loopback and a test namespace.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: http_load --proxy ADDR:PORT|--direct ADDR:PORT --url http://HOST[:PORT]/PATH\n"
    "                 [--connections C] [--requests N] [--seconds S] [--keepalive] [--post JSON]\n"
    "       http_load --tunnel ADDR:PORT --target HOST:PORT --bytes MIB [--seconds S]\n"
    "       http_load --direct ADDR:PORT --bytes MIB [--seconds S]\n"
    "(ADDR numeric IPv4; C <= 256, N <= 1000000, S <= 60, MIB <= 4096)\n";
constexpr int kExitUsage = 2;
constexpr long kMaxRequests = 1000000;
constexpr long kMaxConnections = 256;
constexpr long kMaxSeconds = 60;
constexpr long kMaxMib = 4096;
constexpr double kRequestTimeoutUs = 10e6;
constexpr int kConnectTimeoutMs = 10000;
// An answer larger than this is not the small response the benchmark is about.
constexpr std::size_t kMaxResponseBytes = 1UL << 20;
constexpr std::size_t kMaxHeadBytes = 64UL * 1024;
// Error details printed to stderr; the rest are only counted.
constexpr long kReportedErrors = 5;

[[noreturn]] void usage_exit() {
  std::fputs(kUsage, stderr);
  std::exit(kExitUsage);
}

double now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

long parse_count(const char* text, long min, long max) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) usage_exit();
  return value;
}

bool parse_endpoint(const std::string& text, sockaddr_in* addr) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  *addr = {};
  addr->sin_family = AF_INET;
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &addr->sin_addr) != 1) return false;
  char* end = nullptr;
  const long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (end == text.c_str() + colon + 1 || *end != '\0' || port < 1 || port > 65535) return false;
  addr->sin_port = htons(static_cast<std::uint16_t>(port));
  return true;
}

struct Options {
  enum class Mode { kRequests, kBulk } mode = Mode::kRequests;
  bool via_proxy = false;  // --proxy or --tunnel
  sockaddr_in endpoint{};
  std::string url;        // request mode, as given
  std::string authority;  // HOST[:PORT] of --url, for the Host header
  std::string path;       // origin-form target of --url
  long connections = 1;
  long requests = 1;
  bool keepalive = false;
  std::string post;  // a JSON body: POST instead of GET
  long seconds = kMaxSeconds;
  std::string target;  // tunnel mode: CONNECT target
  long mib = 0;
};

Options parse_options(int argc, char** argv) {
  Options opts;
  int endpoints = 0;
  bool tunnel = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if ((arg == "--proxy" || arg == "--direct" || arg == "--tunnel") && has_value) {
      ++endpoints;
      opts.via_proxy = arg != "--direct";
      tunnel = arg == "--tunnel";
      if (!parse_endpoint(argv[++i], &opts.endpoint)) usage_exit();
    } else if (arg == "--url" && has_value) {
      opts.url = argv[++i];
    } else if (arg == "--connections" && has_value) {
      opts.connections = parse_count(argv[++i], 1, kMaxConnections);
    } else if (arg == "--requests" && has_value) {
      opts.requests = parse_count(argv[++i], 1, kMaxRequests);
    } else if (arg == "--seconds" && has_value) {
      opts.seconds = parse_count(argv[++i], 1, kMaxSeconds);
    } else if (arg == "--keepalive") {
      opts.keepalive = true;
    } else if (arg == "--post" && has_value) {
      opts.post = argv[++i];
      if (opts.post.size() > 65536) usage_exit();
    } else if (arg == "--target" && has_value) {
      opts.target = argv[++i];
    } else if (arg == "--bytes" && has_value) {
      opts.mib = parse_count(argv[++i], 1, kMaxMib);
    } else {
      usage_exit();
    }
  }
  if (endpoints != 1) usage_exit();
  if (opts.mib > 0) {
    // Bulk: --tunnel with a target, or --direct without one; no request-mode options.
    opts.mode = Options::Mode::kBulk;
    if (!opts.url.empty() || opts.via_proxy != tunnel) usage_exit();
    if (tunnel == opts.target.empty()) usage_exit();
    return opts;
  }
  if (tunnel || !opts.target.empty() || opts.url.rfind("http://", 0) != 0) usage_exit();
  const std::string rest = opts.url.substr(7);
  const auto slash = rest.find('/');
  opts.authority = rest.substr(0, slash);
  opts.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (opts.authority.empty()) usage_exit();
  return opts;
}

// Starts a non-blocking connect; returns the socket (-1 on an immediate failure, errno set).
int start_connect(const sockaddr_in& addr) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1) return -1;
  const int one = 1;
  // Small requests must not wait for Nagle; every real HTTP client sets this.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == -1 &&
      errno != EINPROGRESS) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool contains_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// What is known about a response from the bytes received so far.
struct Response {
  enum class State { kIncomplete, kComplete, kBad } state = State::kIncomplete;
  int status = 0;
  bool keep_alive = false;
  bool until_close = false;  // complete only at EOF (no length, not chunked)
};

// Where a chunked body that starts at `pos` ends, or npos while more bytes are needed.
std::size_t chunked_end(const std::string& in, std::size_t pos, bool* bad) {
  for (;;) {
    const auto line_end = in.find("\r\n", pos);
    if (line_end == std::string::npos) return std::string::npos;
    char* end = nullptr;
    const unsigned long size = std::strtoul(in.c_str() + pos, &end, 16);
    if (end == in.c_str() + pos || size > kMaxResponseBytes) {
      *bad = true;
      return std::string::npos;
    }
    if (size == 0) {
      // The last chunk: optional trailers, then an empty line.
      if (in.compare(line_end, 4, "\r\n\r\n") == 0) return line_end + 4;
      const auto trailers_end = in.find("\r\n\r\n", line_end);
      return trailers_end == std::string::npos ? std::string::npos : trailers_end + 4;
    }
    pos = line_end + 2 + size + 2;
    if (pos > in.size()) return std::string::npos;
  }
}

Response parse_response(const std::string& in, bool eof) {
  Response r;
  const auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    if (in.size() > kMaxHeadBytes || eof) r.state = Response::State::kBad;
    return r;
  }
  const std::string_view head(in.data(), head_end + 2);
  const bool http10 = head.rfind("HTTP/1.0 ", 0) == 0;
  if (!http10 && head.rfind("HTTP/1.1 ", 0) != 0) {
    r.state = Response::State::kBad;
    return r;
  }
  r.status = std::atoi(in.c_str() + 9);
  r.keep_alive = !http10;
  long long content_length = -1;
  bool chunked = false;
  std::size_t pos = head.find("\r\n") + 2;
  while (pos < head.size()) {
    const auto end = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = trim(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      content_length = std::atoll(std::string(value).c_str());
    } else if (iequals(name, "transfer-encoding")) {
      chunked = contains_token(value, "chunked");
    } else if (iequals(name, "connection") || iequals(name, "proxy-connection")) {
      if (contains_token(value, "close")) r.keep_alive = false;
      if (contains_token(value, "keep-alive")) r.keep_alive = true;
    }
  }
  const std::size_t body = head_end + 4;
  const bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  if (r.status >= 100 && r.status < 200) {
    r.state = Response::State::kBad;  // a GET gets no interim answers here
  } else if (no_body) {
    r.state = Response::State::kComplete;
  } else if (chunked) {
    bool bad = false;
    const auto end = chunked_end(in, body, &bad);
    if (bad || (end == std::string::npos && eof)) {
      r.state = Response::State::kBad;
    } else if (end != std::string::npos) {
      r.state = Response::State::kComplete;
    }
  } else if (content_length >= 0) {
    if (in.size() - body >= static_cast<std::size_t>(content_length)) {
      r.state = Response::State::kComplete;
    } else if (eof || static_cast<std::size_t>(content_length) > kMaxResponseBytes) {
      r.state = Response::State::kBad;
    }
  } else {
    r.until_close = true;
    r.keep_alive = false;
    if (eof) r.state = Response::State::kComplete;
  }
  if (in.size() > kMaxResponseBytes && r.state == Response::State::kIncomplete) {
    r.state = Response::State::kBad;
  }
  return r;
}

struct Conn {
  enum class State { kIdle, kConnecting, kSending, kReading } state = State::kIdle;
  int fd = -1;
  bool reused = false;    // this request went out on a connection that answered one before
  double started_us = 0;  // when the current request was issued
  std::size_t sent = 0;
  std::string in;
};

class Load {
 public:
  explicit Load(const Options& opts)
      : opts_(opts), conns_(static_cast<std::size_t>(opts.connections)) {
    request_ = (opts.post.empty() ? "GET " : "POST ") + (opts.via_proxy ? opts.url : opts.path) +
               " HTTP/1.1\r\nHost: " + opts.authority +
               "\r\nUser-Agent: http_load\r\nAccept: */*\r\n";
    if (!opts.keepalive) request_ += "Connection: close\r\n";
    if (!opts.post.empty())
      request_ += "Content-Type: application/json\r\nContent-Length: " +
                  std::to_string(opts.post.size()) + "\r\n";
    request_ += "\r\n" + opts.post;
    latencies_us_.reserve(static_cast<std::size_t>(opts.requests));
  }

  int run() {
    const double start = now_us();
    const double stop_at = start + static_cast<double>(opts_.seconds) * 1e6;
    std::vector<pollfd> fds;
    std::vector<Conn*> polled;
    for (;;) {
      const double now = now_us();
      if (now >= stop_at) break;
      for (Conn& c : conns_) {
        if (c.state == Conn::State::kIdle && issued_ < opts_.requests) issue(c, now);
      }
      fds.clear();
      polled.clear();
      double wake = stop_at;
      for (Conn& c : conns_) {
        if (c.state == Conn::State::kIdle) continue;
        const short events = c.state == Conn::State::kReading ? POLLIN : POLLOUT;
        fds.push_back({c.fd, events, 0});
        polled.push_back(&c);
        wake = std::min(wake, c.started_us + kRequestTimeoutUs);
      }
      if (fds.empty()) {
        if (issued_ >= opts_.requests) break;  // every request issued and answered
        continue;                              // every connect failed at once: issue again
      }
      const int wait_ms = static_cast<int>(std::max(0.0, std::ceil((wake - now) / 1e3)));
      const int ready = poll(fds.data(), fds.size(), wait_ms);
      if (ready < 0 && errno != EINTR) {
        std::perror("http_load: poll");
        return 1;
      }
      for (std::size_t i = 0; i < polled.size(); ++i) {
        Conn& c = *polled[i];
        if (ready > 0 && fds[i].revents != 0) on_ready(c);
        if (c.state != Conn::State::kIdle && now_us() - c.started_us > kRequestTimeoutUs) {
          fail(c, "no complete answer within 10 s");
        }
      }
    }
    const double seconds = (now_us() - start) / 1e6;
    long unfinished = 0;
    for (Conn& c : conns_) {
      if (c.state != Conn::State::kIdle) ++unfinished;
      if (c.fd != -1) close(c.fd);
    }
    std::sort(latencies_us_.begin(), latencies_us_.end());
    const long ok = static_cast<long>(latencies_us_.size());
    std::printf(
        "requests=%ld seconds=%.3f rps=%.1f p50_us=%.0f p99_us=%.0f errors=%ld "
        "unfinished=%ld connects=%ld\n",
        ok, seconds, static_cast<double>(ok) / seconds, percentile(50), percentile(99), errors_,
        unfinished, connects_);
    return errors_ == 0 && ok > 0 ? 0 : 1;
  }

 private:
  // Nearest rank over the sorted latencies; 0 when there are none.
  double percentile(double p) const {
    if (latencies_us_.empty()) return 0;
    const auto rank =
        static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(latencies_us_.size())));
    return latencies_us_[std::max<std::size_t>(rank, 1) - 1];
  }

  void issue(Conn& c, double now) {
    ++issued_;
    c.started_us = now;
    c.sent = 0;
    c.in.clear();
    if (c.fd != -1) {
      c.reused = true;
      c.state = Conn::State::kSending;
      return;
    }
    open(c);
  }

  void open(Conn& c) {
    c.reused = false;
    c.fd = start_connect(opts_.endpoint);
    if (c.fd == -1) {
      fail(c, std::string("connect: ") + std::strerror(errno));
      return;
    }
    c.state = Conn::State::kConnecting;
    ++connects_;
  }

  void close_conn(Conn& c) {
    if (c.fd != -1) close(c.fd);
    c.fd = -1;
    c.state = Conn::State::kIdle;
  }

  void fail(Conn& c, const std::string& why) {
    if (++errors_ <= kReportedErrors) std::fprintf(stderr, "http_load: %s\n", why.c_str());
    close_conn(c);
  }

  // The server closed a kept-alive connection before it saw our request (idle timeout, or it
  // answers one request per connection): what every client does is send it again on a new one.
  // Only once per request, so a server that always drops us still ends in an error.
  bool retry_on_new_connection(Conn& c) {
    if (!c.reused || !c.in.empty()) return false;
    close(c.fd);
    c.fd = -1;
    c.sent = 0;
    open(c);
    return true;
  }

  void on_ready(Conn& c) {
    switch (c.state) {
      case Conn::State::kConnecting: {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          fail(c, std::string("connect: ") + std::strerror(err));
          return;
        }
        c.state = Conn::State::kSending;
        [[fallthrough]];  // the socket is writable now
      }
      case Conn::State::kSending: {
        const ssize_t n =
            send(c.fd, request_.data() + c.sent, request_.size() - c.sent, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) return;
          const int err = errno;
          if (!retry_on_new_connection(c)) fail(c, std::string("send: ") + std::strerror(err));
          return;
        }
        c.sent += static_cast<std::size_t>(n);
        if (c.sent == request_.size()) c.state = Conn::State::kReading;
        return;
      }
      case Conn::State::kReading:
        read_answer(c);
        return;
      case Conn::State::kIdle:
        return;
    }
  }

  void read_answer(Conn& c) {
    char buf[16384];
    const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    const bool eof = n <= 0;
    if (eof && retry_on_new_connection(c)) return;
    if (n < 0) {
      fail(c, std::string("recv: ") + std::strerror(errno));
      return;
    }
    c.in.append(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    const Response r = parse_response(c.in, eof);
    if (r.state == Response::State::kIncomplete) return;
    if (r.state == Response::State::kBad) {
      fail(c, eof ? "connection closed before a complete answer" : "malformed answer");
      return;
    }
    if (r.status < 200 || r.status > 299) {
      fail(c, "status " + std::to_string(r.status) + ": " +
                  c.in.substr(0, std::min<std::size_t>(c.in.size(), 300)));
      return;
    }
    latencies_us_.push_back(now_us() - c.started_us);
    if (opts_.keepalive && r.keep_alive && !eof) {
      c.state = Conn::State::kIdle;  // keep the socket for the next request
    } else {
      close_conn(c);
    }
  }

  const Options& opts_;
  std::vector<Conn> conns_;
  std::string request_;
  std::vector<double> latencies_us_;
  long issued_ = 0;
  long errors_ = 0;
  long connects_ = 0;
};

// Waits for fd to become ready for `events` until `deadline_us`; false on timeout or error.
bool wait_for(int fd, short events, double deadline_us) {
  for (;;) {
    const double left = deadline_us - now_us();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::ceil(left / 1e3)));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

bool send_all(int fd, const std::string& data, double deadline_us) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return false;
    } else if (!wait_for(fd, POLLOUT, deadline_us)) {
      return false;
    }
  }
  return true;
}

int run_bulk(const Options& opts) {
  const double start = now_us();
  const double stop_at = start + static_cast<double>(opts.seconds) * 1e6;
  const auto want = static_cast<std::uint64_t>(opts.mib) << 20;
  const int fd = start_connect(opts.endpoint);
  const auto give_up = [&](const std::string& why) {
    std::fprintf(stderr, "http_load: %s\n", why.c_str());
    if (fd != -1) close(fd);
    return 1;
  };
  if (fd == -1) return give_up(std::string("connect: ") + std::strerror(errno));
  if (!wait_for(fd, POLLOUT, std::min(stop_at, start + kConnectTimeoutMs * 1e3))) {
    return give_up("connect timed out");
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return give_up(std::string("connect: ") + std::strerror(err));

  std::uint64_t got = 0;
  std::vector<char> buf(1UL << 20);
  const std::string host = opts.via_proxy ? opts.target : "bulk";
  if (opts.via_proxy) {
    const std::string connect_request =
        "CONNECT " + opts.target + " HTTP/1.1\r\nHost: " + opts.target + "\r\n\r\n";
    if (!send_all(fd, connect_request, stop_at)) return give_up("sending CONNECT failed");
    std::string head;
    std::size_t head_end = std::string::npos;
    while (head_end == std::string::npos) {
      if (head.size() > kMaxHeadBytes || !wait_for(fd, POLLIN, stop_at)) {
        return give_up("no answer to CONNECT");
      }
      const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return give_up("proxy closed during CONNECT: " + head);
      head.append(buf.data(), static_cast<std::size_t>(n));
      head_end = head.find("\r\n\r\n");
    }
    if (head.compare(0, 9, "HTTP/1.1 ") != 0 && head.compare(0, 9, "HTTP/1.0 ") != 0) {
      return give_up("bad answer to CONNECT: " + head.substr(0, head_end));
    }
    if (std::atoi(head.c_str() + 9) != 200) {
      return give_up("CONNECT refused: " + head.substr(0, std::min<std::size_t>(head.size(), 400)));
    }
    got = head.size() - (head_end + 4);  // payload that came with the answer
  }
  // A client-first protocol's opening bytes: the proxy decides on them, the bulk server ignores
  // them.
  const std::string preamble = "GET /bulk HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  if (!send_all(fd, preamble, stop_at)) return give_up("sending the request line failed");

  bool eof = false;
  while (got < want) {
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      got += static_cast<std::uint64_t>(n);
    } else if (n == 0) {
      eof = true;
      break;
    } else if (errno != EAGAIN && errno != EINTR) {
      break;
    } else if (!wait_for(fd, POLLIN, stop_at)) {
      break;
    }
  }
  const double seconds = (now_us() - start) / 1e6;
  close(fd);
  const double mib = static_cast<double>(got) / static_cast<double>(1UL << 20);
  std::printf("mib=%.1f seconds=%.3f mib_per_s=%.1f\n", mib, seconds, mib / seconds);
  if (got < want) {
    std::fprintf(stderr, "http_load: got %.1f of %ld MiB (%s)\n", mib, opts.mib,
                 eof ? "closed early" : "error or time limit");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opts = parse_options(argc, argv);
  if (opts.mode == Options::Mode::kBulk) return run_bulk(opts);
  Load load(opts);
  return load.run();
}
