// connect_exec ADDR PORT CMD [ARGS...] : connects a TCP socket to ADDR:PORT (numeric IPv4), puts
// it at descriptor 3 and execs CMD with it. The identity tests use it to hand a connection made
// by this binary to another one. Prints "connect errno=NAME" and exits 1 if the connect fails;
// exits 127 if CMD cannot be executed, 2 on bad arguments.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "probe_output.hpp"

int main(int argc, char** argv) {
  using openshell::probe::parse_long;
  using openshell::probe::usage_exit;
  constexpr const char* kUsage = "connect_exec ADDR PORT CMD [ARGS...]";
  long port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (argc < 4 || !parse_long(argv[2], 1, 65535, &port) ||
      inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1)
    usage_exit(kUsage);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);  // no CLOEXEC: CMD inherits it
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::printf("connect errno=%s\n", openshell::probe::errno_name(errno));
    return 1;
  }
  if (fd != 3 && (dup2(fd, 3) != 3 || close(fd) != 0)) return 1;
  execv(argv[3], argv + 3);
  std::printf("exec errno=%s\n", openshell::probe::errno_name(errno));
  return 127;
}
