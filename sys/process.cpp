#include "sys/process.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/file_util.hpp"

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

Result<ProcessHandle> ProcessHandle::open(int pid) {
  UniqueFd fd = pidfd_open(pid);
  if (!fd) return Error::from_errno("process " + std::to_string(pid));
  return ProcessHandle(std::move(fd), pid);
}

bool ProcessHandle::ended() const {
  if (!pidfd_) return true;
  pollfd p{pidfd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

Status ProcessHandle::signal(int sig) const {
  if (!pidfd_) return Error::invalid("no process");
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0)
    return Error::from_errno("signalling process " + std::to_string(pid_));
  return {};
}

namespace {

// A /proc/PID file of this handle's process: read, then believed only if the process still runs.
Result<std::string> read_proc(const ProcessHandle& process, const char* file) {
  auto text = read_file("/proc/" + std::to_string(process.pid()) + "/" + file, 64 * 1024);
  if (!text) return text.error();
  if (process.ended()) return Error::from_errno("process " + std::to_string(process.pid()), ESRCH);
  return text;
}

}  // namespace

Result<std::string> ProcessHandle::cmdline() const { return read_proc(*this, "cmdline"); }

Result<std::string> ProcessHandle::cgroup() const {
  auto text = read_proc(*this, "cgroup");
  if (!text) return text.error();
  // "0::/path" (unified), else "N:name=systemd:/path" (hybrid and legacy hosts).
  std::string named;
  size_t at = 0;
  while (at < text->size()) {
    size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    const std::string_view line(text->data() + at, end - at);
    if (line.starts_with("0::")) return std::string(line.substr(3));
    if (const auto n = line.find(":name=systemd:"); n != std::string_view::npos)
      named = line.substr(n + 14);
    at = end + 1;
  }
  if (named.empty()) return Error::invalid("no cgroup for process " + std::to_string(pid_));
  return named;
}

Result<ProcessHandle> spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) return Error::invalid("spawn: no command");
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  struct Attributes {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    Attributes() {
      posix_spawn_file_actions_init(&actions);
      posix_spawnattr_init(&attr);
    }
    ~Attributes() {
      posix_spawn_file_actions_destroy(&actions);
      posix_spawnattr_destroy(&attr);
    }
    Attributes(const Attributes&) = delete;
    Attributes& operator=(const Attributes&) = delete;
  } a;
  // Not our blocked signals nor our dispositions: a mask survives exec.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  int rc = posix_spawnattr_setsigmask(&a.attr, &none);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&a.attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.new_session) flags = static_cast<short>(flags | POSIX_SPAWN_SETSID);
  if (rc == 0) rc = posix_spawnattr_setflags(&a.attr, flags);
  // Through copies above every target, so that no dup2 meets its own target.
  int first_free = 3;
  for (const auto& [fd, target] : spec.fds) first_free = std::max(first_free, target + 1);
  std::vector<UniqueFd> copies;
  for (const auto& [fd, target] : spec.fds) {
    if (rc != 0) break;
    UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, std::max(first_free, 10)));
    if (!copy) return Error::from_errno("spawn: duplicating a descriptor");
    rc = posix_spawn_file_actions_adddup2(&a.actions, copy.get(), target);
    copies.push_back(std::move(copy));
  }
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&a.actions, first_free);
  if (rc != 0) return Error::from_errno("preparing to start " + spec.argv[0], rc);
  pid_t pid = -1;
  if (int err = ::posix_spawn(&pid, argv[0], &a.actions, &a.attr, argv.data(), environ); err != 0)
    return Error::from_errno("could not start " + spec.argv[0], err);
  // Ours and not reaped yet (whoever reaps our children does so after this returns): the pid
  // still names it, exited or not.
  UniqueFd pidfd = pidfd_open(pid);
  if (!pidfd) return Error::from_errno("pidfd_open for " + spec.argv[0]);
  return ProcessHandle(std::move(pidfd), pid);
}

void reap_exited_children() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

int exit_code_of(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 255;
}

}  // namespace openshell::sys
