// The seccomp baseline, installed in a forked child (no root needed: no_new_privs suffices).
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>

#include "sys/seccomp.hpp"

using openshell::sys::build_seccomp_baseline;
using openshell::sys::seccomp_install_in_child;

namespace {

// Runs `attempt` in a child under the baseline; returns the errno it saw (0 for success).
int errno_under_baseline(const std::function<long()>& attempt) {
  auto program = build_seccomp_baseline({});
  REQUIRE(program.ok());
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    int result = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || seccomp_install_in_child(*program) != 0) {
      result = -1;
    } else {
      errno = 0;
      long rc = attempt();
      result = rc < 0 ? errno : 0;
    }
    (void)!write(fds[1], &result, sizeof result);
    _exit(0);
  }
  close(fds[1]);
  int result = -2;
  REQUIRE(read(fds[0], &result, sizeof result) == sizeof result);
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  REQUIRE(result != -1);
  return result;
}

}  // namespace

TEST_CASE("the baseline compiles to a BPF program") {
  auto program = build_seccomp_baseline({});
  REQUIRE(program.ok());
  CHECK(program->instructions.size() > 10);
}

TEST_CASE("the baseline refuses mounts, namespaces, ptrace and foreign socket families") {
  CHECK(errno_under_baseline([] { return mount("none", "/tmp", "tmpfs", 0, nullptr); }) == EPERM);
  CHECK(errno_under_baseline([] { return unshare(CLONE_NEWUSER); }) == EPERM);
  CHECK(errno_under_baseline([] { return syscall(SYS_ptrace, 0 /*TRACEME*/, 0, 0, 0); }) == EPERM);
  CHECK(errno_under_baseline([] { return syscall(SYS_clone3, nullptr, 0); }) == ENOSYS);
  CHECK(errno_under_baseline([] { return socket(AF_PACKET, SOCK_RAW, 0); }) == EPERM);
  CHECK(errno_under_baseline([] { return socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG); }) ==
        EPERM);
  CHECK(errno_under_baseline([] { return socket(1000, SOCK_STREAM, 0); }) == EPERM);
  CHECK(errno_under_baseline([] { return socketpair(AF_INET, SOCK_STREAM, 0, nullptr); }) != EPERM);
}

TEST_CASE("the baseline leaves ordinary work alone") {
  CHECK(errno_under_baseline([] {
          int fd = socket(AF_INET, SOCK_STREAM, 0);
          return fd < 0 ? -1L : close(fd);
        }) == 0);
  CHECK(errno_under_baseline([] {
          int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
          return fd < 0 ? -1L : close(fd);
        }) == 0);
  CHECK(errno_under_baseline([] {
          int fd = socket(AF_UNIX, SOCK_STREAM, 0);
          return fd < 0 ? -1L : close(fd);
        }) == 0);
  CHECK(errno_under_baseline([] {
          pid_t p = fork();
          if (p == 0) _exit(0);
          return p < 0 ? -1L : waitpid(p, nullptr, 0);
        }) == 0);
  CHECK(errno_under_baseline([] {
          int fd = open("/dev/null", O_RDONLY);
          return fd < 0 ? -1L : close(fd);
        }) == 0);
}

TEST_CASE("every socket family but unix, inet, inet6 and netlink is refused") {
  for (int family = 0; family < 80; ++family) {
    const bool allowed =
        family == AF_UNIX || family == AF_INET || family == AF_INET6 || family == AF_NETLINK;
    const int err = errno_under_baseline([family] {
      int fd = socket(family, SOCK_DGRAM, 0);
      return fd < 0 ? -1L : close(fd);
    });
    INFO("family " << family);
    if (allowed) {
      CHECK(err != EPERM);
    } else {
      CHECK(err == EPERM);
    }
  }
}
