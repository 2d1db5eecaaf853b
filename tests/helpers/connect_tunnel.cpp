// connect_tunnel PROXY_ADDR PROXY_PORT TARGET SECONDS [ECHO_BYTES] : opens a CONNECT tunnel to
// TARGET (host:port) through an explicit proxy and holds it. Prints "tunnel <status>" once the
// proxy answered, then "tunnel closed" when the proxy ends it, or "tunnel open" if it was
// still up after SECONDS. With ECHO_BYTES (1..268435456, for an echo upstream) it instead sends
// that many bytes of a fixed pattern, reads them back within SECONDS and prints "echo ok N",
// "echo mismatch at OFFSET" or "echo short N" (N bytes came back). Exits 0 either way; 2 on bad
// arguments.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "probe_output.hpp"

namespace {

std::uint8_t pattern_at(std::size_t i) { return static_cast<std::uint8_t>((i * 131) ^ (i >> 9)); }

long elapsed_ms(const timespec& start) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
}

// Writes `total` pattern bytes and reads the echo at the same time (an echo server stops reading
// when we stop reading), comparing as it goes.
void echo_check(int fd, std::size_t total, const timespec& start, long seconds) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::size_t sent = 0, received = 0;
  char out[65536], in[65536];
  while (received < total) {
    const long left_ms = seconds * 1000 - elapsed_ms(start);
    if (left_ms <= 0) break;
    pollfd p{fd, static_cast<short>(POLLIN | (sent < total ? POLLOUT : 0)), 0};
    if (poll(&p, 1, static_cast<int>(left_ms)) <= 0) break;
    if ((p.revents & POLLOUT) != 0 && sent < total) {
      std::size_t n = std::min(sizeof out, total - sent);
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(pattern_at(sent + i));
      const ssize_t w = write(fd, out, n);
      if (w > 0) sent += static_cast<std::size_t>(w);
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t r = read(fd, in, sizeof in);
      if (r == 0 || (r < 0 && errno != EAGAIN)) break;
      for (ssize_t i = 0; i < r; ++i, ++received) {
        if (static_cast<std::uint8_t>(in[i]) != pattern_at(received)) {
          std::printf("echo mismatch at %zu\n", received);
          return;
        }
      }
    }
  }
  if (received == total) {
    std::printf("echo ok %zu\n", received);
  } else {
    std::printf("echo short %zu\n", received);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using openshell::probe::parse_long;
  using openshell::probe::usage_exit;
  constexpr const char* kUsage = "connect_tunnel PROXY_ADDR PROXY_PORT TARGET SECONDS [ECHO_BYTES]";
  long port = 0, seconds = 0, echo_bytes = 0;
  if ((argc != 5 && argc != 6) || !parse_long(argv[2], 1, 65535, &port) ||
      !parse_long(argv[4], 1, 600, &seconds) ||
      (argc == 6 && !parse_long(argv[5], 1, 1L << 28, &echo_bytes)))
    usage_exit(kUsage);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) usage_exit(kUsage);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::printf("tunnel errno=%s\n", openshell::probe::errno_name(errno));
    return 0;
  }
  const std::string request =
      std::string("CONNECT ") + argv[3] + " HTTP/1.1\r\nHost: " + argv[3] + "\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    std::printf("tunnel errno=%s\n", openshell::probe::errno_name(errno));
    return 0;
  }
  std::string head;
  char c;
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0 || read(fd, &c, 1) != 1) break;
    head += c;
  }
  const auto sp = head.find(' ');
  std::printf("tunnel %s\n", sp == std::string::npos ? "none" : head.substr(sp + 1, 3).c_str());
  std::fflush(stdout);
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  if (echo_bytes > 0) {
    echo_check(fd, static_cast<std::size_t>(echo_bytes), start, seconds);
    close(fd);
    return 0;
  }
  for (;;) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const long left_ms = seconds * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
                                           (now.tv_nsec - start.tv_nsec) / 1000000);
    if (left_ms <= 0) {
      std::printf("tunnel open\n");
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left_ms)) > 0) {
      char buf[4096];
      if (read(fd, buf, sizeof buf) <= 0) {
        std::printf("tunnel closed\n");
        break;
      }
    }
  }
  close(fd);
  return 0;
}
