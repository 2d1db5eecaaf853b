// connect_tunnel PROXY_ADDR PROXY_PORT TARGET SECONDS : opens a CONNECT tunnel to TARGET
// (host:port) through an explicit proxy and holds it. Prints "tunnel <status>" once the
// proxy answered, then "tunnel closed" when the proxy ends it, or "tunnel open" if it was
// still up after SECONDS. Exits 0 either way; 2 on bad arguments.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "probe_output.hpp"

int main(int argc, char** argv) {
  using openshell::probe::parse_long;
  using openshell::probe::usage_exit;
  constexpr const char* kUsage = "connect_tunnel PROXY_ADDR PROXY_PORT TARGET SECONDS";
  long port = 0, seconds = 0;
  if (argc != 5 || !parse_long(argv[2], 1, 65535, &port) || !parse_long(argv[4], 1, 600, &seconds))
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
