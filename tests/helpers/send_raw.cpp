// send_raw ADDR PORT DATA [QUIET_MS] : sends exactly the bytes DATA names to a numeric IPv4 or
// IPv6 address, then prints every byte that comes back as it is, until the peer closes or
// nothing arrived for QUIET_MS (default 2000; at most 60000). DATA is C-escaped (\r, \n, \t,
// \xHH and a doubled backslash), so a test can send what no HTTP client would: a bare LF, an
// obs-fold, two lengths.
// Prints "send_raw errno=ENAME" to stderr if it cannot connect or send. Exits 0 once done, 1
// when it could not connect, 2 on bad arguments.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "probe_output.hpp"

namespace {

using openshell::probe::errno_name;
using openshell::probe::parse_long;
using openshell::probe::usage_exit;

constexpr const char* kUsage = "send_raw ADDR PORT DATA [QUIET_MS] (DATA: \\r \\n \\t \\\\ \\xHH)";

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unescape(const char* in, std::string* out) {
  for (const char* p = in; *p != '\0'; ++p) {
    if (*p != '\\') {
      out->push_back(*p);
      continue;
    }
    switch (*++p) {
      case 'r':
        out->push_back('\r');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 't':
        out->push_back('\t');
        break;
      case '\\':
        out->push_back('\\');
        break;
      case 'x': {
        if (p[1] == '\0' || hex(p[1]) < 0 || p[2] == '\0' || hex(p[2]) < 0) return false;
        out->push_back(static_cast<char>(hex(p[1]) * 16 + hex(p[2])));
        p += 2;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) usage_exit(kUsage);
  long port = 0;
  long quiet_ms = 2000;
  std::string data;
  if (!parse_long(argv[2], 1, 65535, &port) || !unescape(argv[3], &data) ||
      (argc == 5 && !parse_long(argv[4], 1, 60000, &quiet_ms)))
    usage_exit(kUsage);
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, argv[1], &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, argv[1], &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    usage_exit(kUsage);
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    std::fprintf(stderr, "send_raw errno=%s\n", errno_name(errno));
    return 1;
  }
  for (size_t sent = 0; sent < data.size();) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      std::fprintf(stderr, "send_raw errno=%s\n", errno_name(errno));
      break;
    }
    sent += static_cast<size_t>(n);
  }
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(quiet_ms)) <= 0) break;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
    std::fflush(stdout);
  }
  close(fd);
  return 0;
}
