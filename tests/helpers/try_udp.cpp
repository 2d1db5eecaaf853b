// try_udp HOST PORT [TIMEOUT_MS] : one UDP datagram to a numeric IPv4 or IPv6 address, then a
// wait for any reply. Prints "udp HOST:PORT ok" when a reply arrives, or
// "udp HOST:PORT errno=ENAME": the send's errno, the receive's (ECONNREFUSED after an ICMP
// unreachable), or ETIMEDOUT when nothing came back.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "probe_output.hpp"

namespace {

using openshell::probe::parse_long;
using openshell::probe::print_result;
using openshell::probe::usage_exit;

constexpr const char* kUsage = "try_udp HOST PORT [TIMEOUT_MS] (HOST numeric IPv4 or IPv6)";

int attempt(const char* host, uint16_t port, int timeout_ms) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!openshell::probe::numeric_address(host, port, &ss, &len)) usage_exit(kUsage);
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int err = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      send(fd, "openshell-probe", 15, 0) < 0) {
    err = errno;
  } else {
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, timeout_ms);
    char buf[512];
    if (n == 0)
      err = ETIMEDOUT;
    else if (n < 0 || recv(fd, buf, sizeof buf, 0) < 0)
      err = errno;
  }
  close(fd);
  return err;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) usage_exit(kUsage);
  long port = 0, timeout_ms = 3000;
  if (!parse_long(argv[2], 1, 65535, &port)) usage_exit(kUsage);
  if (argc == 4 && !parse_long(argv[3], 1, 600000, &timeout_ms)) usage_exit(kUsage);
  const std::string what = std::string("udp ") + argv[1] + ':' + argv[2];
  print_result(what.c_str(),
               attempt(argv[1], static_cast<uint16_t>(port), static_cast<int>(timeout_ms)));
  return 0;
}
