// Processes: clone3 with a pidfd, pipes, and ChildProcess (pid + pidfd, kill-and-reap by default).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::sys {

// Both ends O_CLOEXEC (plus `extra_flags`, e.g. O_NONBLOCK). [0] reads, [1] writes.
Result<std::array<UniqueFd, 2>> make_pipe(int extra_flags = 0);

// Raises this process's soft RLIMIT_NOFILE to `want` (at most the hard limit); returns the
// soft limit in force afterwards. Call after children that should keep the default have forked.
Result<uint64_t> raise_open_file_limit(uint64_t want);

struct CloneResult {
  pid_t pid = -1;  // 0 in the child
  int pidfd = -1;  // parent only
};

// A pidfd for `pid` (empty, errno set, if there is no such process). Race-free only for a
// child not yet reaped; for any other process the pid may have been reused.
UniqueFd pidfd_open(pid_t pid);

// fork-like clone3: returns twice (pid 0 in the child). `flags` are CLONE_NEW* flags;
// CLONE_PIDFD is always added. cgroup_fd >= 0 places the child with CLONE_INTO_CGROUP.
Result<CloneResult> clone3_fork(uint64_t flags, int cgroup_fd);

// A child we own: killed and reaped on destruction unless waited for or released.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int pidfd() const { return pidfd_.get(); }
  [[nodiscard]] bool running() const { return pid_ > 0; }

  // Signals through the pidfd, so a recycled pid is never hit.
  Status signal(int sig) const;
  // Blocks until exit; returns the raw wait status.
  Result<int> wait();
  // Non-blocking: the raw wait status if it has exited.
  Result<int> try_wait(bool* exited);
  void kill_and_reap();

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

// Exit code of a raw wait status as a shell reports it: the code, or 128+N for signal N.
int exit_code_of(int wait_status);

}  // namespace openshell::sys
