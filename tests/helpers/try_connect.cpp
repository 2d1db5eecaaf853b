// try_connect HOST PORT [TIMEOUT_MS] : one TCP connect to a numeric IPv4 or IPv6 address.
// Prints "connect HOST:PORT ok" or "connect HOST:PORT errno=ENAME" (HOST exactly as given; a
// timeout is errno=ETIMEDOUT), then "elapsed_ms=N". A failing socket() (say, a seccomp or
// network-namespace refusal) is reported the same way, with its errno.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "probe_output.hpp"

namespace {

using openshell::probe::parse_long;
using openshell::probe::print_result;
using openshell::probe::usage_exit;

constexpr const char* kUsage = "try_connect HOST PORT [TIMEOUT_MS] (HOST numeric IPv4 or IPv6)";
constexpr long kDefaultTimeoutMs = 3000;

long now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int connect_with_timeout(const sockaddr_storage& addr, socklen_t addr_len, long timeout_ms) {
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1) return errno;
  int err = 0;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) == -1) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      const long deadline = now_ms() + timeout_ms;
      int ready = 0;
      for (;;) {
        const long left = deadline - now_ms();
        ready = left > 0 ? poll(&pfd, 1, static_cast<int>(left)) : 0;
        if (ready != -1 || errno != EINTR) break;
      }
      if (ready == 0) {
        err = ETIMEDOUT;
      } else if (ready == -1) {
        err = errno;
      } else {
        // The connect's own outcome, e.g. ECONNREFUSED or EHOSTUNREACH.
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) err = errno;
      }
    }
  }
  close(fd);
  return err;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) usage_exit(kUsage);
  const char* host = argv[1];
  long port = 0;
  long timeout_ms = kDefaultTimeoutMs;
  if (!parse_long(argv[2], 1, 65535, &port)) usage_exit(kUsage);
  if (argc == 4 && !parse_long(argv[3], 1, 600000, &timeout_ms)) usage_exit(kUsage);

  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (!openshell::probe::numeric_address(host, port, &addr, &addr_len)) usage_exit(kUsage);

  const long start = now_ms();
  const int err = connect_with_timeout(addr, addr_len, timeout_ms);
  const long elapsed = now_ms() - start;
  const std::string what = std::string("connect ") + host + ':' + argv[2];
  print_result(what.c_str(), err);
  std::printf("elapsed_ms=%ld\n", elapsed);
  return 0;
}
