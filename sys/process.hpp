// Processes: clone3 with a pidfd, pipes, and ChildProcess (pid + pidfd, kill-and-reap by default).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

// A process held by a pidfd from the moment it is known: every signal and wait goes through the
// pidfd, so none reaches a process that took its pid later. Not a child we reap (see
// ChildProcess): a detached supervisor, say, which may outlive us. The pid is for display and
// for records that let a later process open the handle again.
class ProcessHandle {
 public:
  ProcessHandle() = default;
  ProcessHandle(UniqueFd pidfd, int pid) : pidfd_(std::move(pidfd)), pid_(pid) {}

  // `pid` as a handle, if that process runs. Which process that is, is for the caller to check
  // (cmdline(), unit()): a pid alone may have been reused.
  static Result<ProcessHandle> open(int pid);

  [[nodiscard]] explicit operator bool() const { return static_cast<bool>(pidfd_); }
  [[nodiscard]] int pid() const { return pid_; }
  [[nodiscard]] int fd() const { return pidfd_.get(); }  // readable once the process has ended
  [[nodiscard]] bool ended() const;
  Status signal(int sig) const;
  // Its /proc/PID/cmdline (NUL-separated), and its cgroup path (the unified hierarchy's, else
  // systemd's named one: where systemd keeps its units); each read while the pidfd shows the
  // process still runs, so it is this process's and no later one's.
  Result<std::string> cmdline() const;
  Result<std::string> cgroup() const;

 private:
  UniqueFd pidfd_;
  int pid_ = -1;
};

// A new process running argv[0] (a path) with argv, posix_spawn'd (a vfork: no copy of the
// caller's page tables), signals unblocked and at their defaults, in a session of its own with
// `new_session`. `fds` are (descriptor, number in the child) pairs; every other descriptor is
// closed in the child. Returns its handle, opened before anything can reap it.
struct SpawnSpec {
  std::vector<std::string> argv;
  std::vector<std::pair<int, int>> fds;
  bool new_session = true;
};
Result<ProcessHandle> spawn(const SpawnSpec& spec);

// Reaps every child (and, as a subreaper, every orphan given to us) that has exited; their
// ends are learnt through their pidfds, not here.
void reap_exited_children();

// Exit code of a raw wait status as a shell reports it: the code, or 128+N for signal N.
int exit_code_of(int wait_status);

}  // namespace openshell::sys
