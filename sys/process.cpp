#include "sys/process.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace openshell::sys {

Result<std::array<UniqueFd, 2>> make_pipe(int extra_flags) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | extra_flags) != 0) return Error::from_errno("pipe2");
  return std::array<UniqueFd, 2>{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<uint64_t> raise_open_file_limit(uint64_t want) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return Error::from_errno("getrlimit NOFILE");
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < want) {
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? want : std::min<rlim_t>(want, limit.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return Error::from_errno("setrlimit NOFILE");
  }
  return static_cast<uint64_t>(limit.rlim_cur);
}

UniqueFd pidfd_open(pid_t pid) {
  if (pid <= 0) return UniqueFd();
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

Result<CloneResult> clone3_fork(uint64_t flags, int cgroup_fd) {
  clone_args args;
  std::memset(&args, 0, sizeof args);
  int pidfd = -1;
  args.flags = flags | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  long rc = ::syscall(SYS_clone3, &args, sizeof args);
  if (rc < 0) return Error::from_errno("clone3");
  CloneResult r;
  r.pid = static_cast<pid_t>(rc);
  r.pidfd = rc == 0 ? -1 : pidfd;
  return r;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pidfd_(std::move(other.pidfd_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
  }
  return *this;
}

ChildProcess::~ChildProcess() { kill_and_reap(); }

Status ChildProcess::signal(int sig) const {
  if (pid_ <= 0) return Error::invalid("no process");
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0)
    return Error::from_errno("pidfd_send_signal");
  return {};
}

Result<int> ChildProcess::wait() {
  if (pid_ <= 0) return Error::invalid("no process to wait for");
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info, WEXITED);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return Error::from_errno("waitid");
  pid_ = -1;
  pidfd_.reset();
  if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
  return W_EXITCODE(0, info.si_status) | (info.si_code == CLD_DUMPED ? WCOREFLAG : 0);
}

Result<int> ChildProcess::try_wait(bool* exited) {
  *exited = false;
  if (pid_ <= 0) return Error::invalid("no process to wait for");
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info,
               WEXITED | WNOHANG) != 0)
    return Error::from_errno("waitid");
  if (info.si_pid == 0) return 0;
  *exited = true;
  pid_ = -1;
  pidfd_.reset();
  if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
  return W_EXITCODE(0, info.si_status);
}

void ChildProcess::kill_and_reap() {
  if (pid_ <= 0) return;
  (void)signal(SIGKILL);
  (void)wait();
}

int exit_code_of(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 255;
}

}  // namespace openshell::sys
