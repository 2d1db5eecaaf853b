// fork_bomb [MAX] : forks children that each pause(), until fork fails, MAX children exist
// (default 100000) or 20 s have passed. Prints
//   forks=N
//   errno=ENAME        (why fork stopped working; "errno=none" if it never failed)
//   stop=REASON        (fork_failed, max or time_limit)
// then SIGKILLs and reaps every child and exits 0. Tests run it under a pids limit and expect
// errno=EAGAIN well before MAX.
//
// It must never run away, even outside a sandbox or if the parent dies early: the count and
// the wall time are capped, and each child dies with its parent (PR_SET_PDEATHSIG) or, as a
// last resort, on its own alarm.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "probe_output.hpp"

namespace {

using openshell::probe::errno_name;
using openshell::probe::parse_long;
using openshell::probe::usage_exit;

constexpr long kDefaultMax = 100000;
constexpr long kHardMax = 1000000;
constexpr long kWallLimitMs = 20000;
// Longer than the wall limit plus the kill-and-reap phase.
constexpr unsigned kChildLifetimeSeconds = 120;

long now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

[[noreturn]] void idle_in_child(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died before PDEATHSIG was armed.
  if (getppid() != parent) _exit(0);
  alarm(kChildLifetimeSeconds);
  for (;;) pause();
}

}  // namespace

int main(int argc, char** argv) {
  long max = kDefaultMax;
  if (argc > 2 || (argc == 2 && !parse_long(argv[1], 1, kHardMax, &max))) {
    usage_exit("fork_bomb [MAX] (1..1000000, default 100000)");
  }

  // Reserved up front: under a memory limit the bookkeeping must not be what fails first.
  std::vector<pid_t> children;
  children.reserve(static_cast<std::size_t>(max));
  const pid_t self = getpid();
  const long deadline = now_ms() + kWallLimitMs;
  int fork_errno = 0;
  const char* stop = "max";
  while (static_cast<long>(children.size()) < max) {
    if (now_ms() >= deadline) {
      stop = "time_limit";
      break;
    }
    const pid_t pid = fork();
    if (pid == 0) idle_in_child(self);
    if (pid == -1) {
      fork_errno = errno;
      stop = "fork_failed";
      break;
    }
    children.push_back(pid);
  }

  std::printf("forks=%zu\n", children.size());
  std::printf("errno=%s\n", fork_errno == 0 ? "none" : errno_name(fork_errno));
  std::printf("stop=%s\n", stop);
  std::fflush(stdout);

  for (const pid_t pid : children) kill(pid, SIGKILL);
  for (const pid_t pid : children) {
    while (waitpid(pid, nullptr, 0) == -1 && errno == EINTR) {
    }
  }
  return 0;
}
