// hold_connect HOST PORT SECONDS [fork] : one TCP connect to a numeric IPv4 or IPv6 address,
// then hold the connection open until the peer closes it or SECONDS pass, so a test can look
// at the connected socket from outside (caller identification). Prints "pid=N" first, then
// "connect HOST:PORT ok" or "... errno=ENAME". With "fork", a child that shares the socket is
// forked after the connect and "fork ok" then "child=N" (or "fork errno=ENAME") are printed
// before the connect line; the child holds the socket the same way and dies with its parent.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
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

constexpr const char* kUsage = "hold_connect HOST PORT SECONDS [fork] (HOST numeric IPv4 or IPv6)";

long now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

// Until the peer closes (EOF or error) or the deadline. Whatever the peer sends is discarded.
void hold(int fd, long seconds) {
  const long deadline = now_ms() + seconds * 1000L;
  for (;;) {
    const long left = deadline - now_ms();
    if (left <= 0) return;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;
    char buf[512];
    if (read(fd, buf, sizeof buf) <= 0) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) usage_exit(kUsage);
  const char* host = argv[1];
  long port = 0;
  long seconds = 0;
  if (!parse_long(argv[2], 1, 65535, &port)) usage_exit(kUsage);
  if (!parse_long(argv[3], 1, 3600, &seconds)) usage_exit(kUsage);
  const bool do_fork = argc == 5;
  if (do_fork && std::strcmp(argv[4], "fork") != 0) usage_exit(kUsage);

  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (!openshell::probe::numeric_address(host, port, &addr, &addr_len)) usage_exit(kUsage);

  std::printf("pid=%d\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  const std::string what = std::string("connect ") + host + ':' + argv[2];
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || connect(fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) == -1) {
    print_result(what.c_str(), errno);
    return 0;
  }
  if (do_fork) {
    const pid_t parent = getpid();
    const pid_t child = fork();
    if (child == 0) {
      // A test that kills the parent must not leave this one holding the socket.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      hold(fd, seconds);
      _exit(0);
    }
    if (child < 0) {
      print_result("fork", errno);
    } else {
      print_result("fork", 0);
      std::printf("child=%d\n", static_cast<int>(child));
      std::fflush(stdout);
    }
  }
  print_result(what.c_str(), 0);
  hold(fd, seconds);
  return 0;
}
