#include "supervisor/launch/launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "supervisor/launch/child.hpp"
#include "supervisor/network/sandbox_network.hpp"
#include "supervisor/launch/stage.hpp"
#include "sys/process.hpp"
#include "sys/unix_socket.hpp"
#include "sys/userns.hpp"

namespace openshell::supervisor {
namespace {

// The network namespace is made beforehand (SandboxNetwork) and joined by the child.
constexpr uint64_t kNamespaces = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
// Setup is milliseconds; this only bounds a wedged kernel call.
constexpr int kSetupTimeoutMs = 30000;

enum class Wait { kReadable, kTimeout, kError };

Wait wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return Wait::kError;
  return rc == 0 ? Wait::kTimeout : Wait::kReadable;
}

// Reads one StageRecord, the sender's pid (SO_PASSCRED) and a descriptor sent with it (into
// *received when given; closed otherwise); false on EOF or error.
bool read_record(int fd, StageRecord* record, pid_t* sender, UniqueFd* received = nullptr) {
  auto message = sys::receive_message(fd, sizeof *record, 1);
  if (!message || !message->has_value()) return false;
  sys::Message& m = **message;
  if (m.sender > 0) *sender = m.sender;
  if (received != nullptr && !m.fds.empty()) *received = std::move(m.fds.front());
  if (m.frame.size() != sizeof *record) return false;
  std::memcpy(record, m.frame.data(), sizeof *record);
  return true;
}

std::string describe(const LaunchPlan& plan, const StageRecord& r) {
  std::string what = "sandbox setup failed at stage " + std::string(stage_name(r.stage));
  const bool mount_stage = r.stage == Stage::kMountTarget || r.stage == Stage::kBindMount ||
                           r.stage == Stage::kMountAttr || r.stage == Stage::kTmpfs ||
                           r.stage == Stage::kDev || r.stage == Stage::kProc ||
                           r.stage == Stage::kSymlink || r.stage == Stage::kOverlay;
  if (mount_stage && r.detail >= 0 && static_cast<size_t>(r.detail) < plan.mounts.size())
    what += " (" + plan.mounts[static_cast<size_t>(r.detail)].target + ")";
  if (r.stage == Stage::kLandlock && r.detail >= 0 &&
      static_cast<size_t>(r.detail) < plan.landlock.rules.size())
    what += " (" + plan.landlock.rules[static_cast<size_t>(r.detail)].path + ")";
  if (r.stage == Stage::kExec) what += " (" + plan.argv_storage[0] + ")";
  return what;
}

Error setup_failed(const LaunchPlan& plan, const StageRecord& r) {
  return Error::from_errno(describe(plan, r), r.err);
}

}  // namespace

Result<LaunchedSandbox> launch_sandbox(LaunchPlan& plan, const sys::Cgroup& cgroup,
                                       SandboxNetwork& network, StageRecord* failure) {
  *failure = StageRecord{};
  auto sync = sys::make_pipe();
  auto notify = sys::make_pipe();
  // A socket, not a pipe, so the agent's announcement carries its pid (SCM_CREDENTIALS).
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
    return Error::from_errno("creating the launch socket");
  std::array<UniqueFd, 2> report{UniqueFd(sp[0]), UniqueFd(sp[1])};
  const int one = 1;
  if (::setsockopt(sp[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0)
    return Error::from_errno("SO_PASSCRED");
  auto status = sys::make_pipe();
  if (!sync || !notify || !status) return Error::from_errno("creating launch pipes");
  int exec_pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, exec_pair) != 0)
    return Error::from_errno("creating the exec socket");
  UniqueFd exec_ours(exec_pair[0]), exec_init(exec_pair[1]);

  const int cgroup_fd = cgroup.version() == sys::CgroupVersion::kV2 ? cgroup.dir_fd() : -1;
  auto netns = network.netns_fd();
  if (!netns) return netns.error();
  auto cloned = sys::clone3_fork(kNamespaces, cgroup_fd);
  if (!cloned) return cloned.error().wrap("creating the sandbox's namespaces");
  if (cloned->pid == 0) {
    ChildChannels channels{(*sync)[0].get(), (*notify)[1].get(), report[1].get(),
                           (*status)[1].get(), *netns, exec_init.get()};
    run_sandbox_init_in_child(plan, channels);
  }

  LaunchedSandbox out;
  out.init = sys::ChildProcess(cloned->pid, UniqueFd(cloned->pidfd));
  (*sync)[0].reset();
  (*notify)[1].reset();
  report[1].reset();
  (*status)[1].reset();
  out.status_read = std::move((*status)[0]);
  exec_init.reset();
  out.exec_channel = std::move(exec_ours);
  const int error_fd = report[0].get();

  pid_t sender = -1;
  auto child_failed = [&]() -> Error {
    if (read_record(error_fd, failure, &sender)) return setup_failed(plan, *failure);
    return Error::invalid("sandbox init exited during setup without a report");
  };

  if (cgroup.version() == sys::CgroupVersion::kV1) {
    if (auto st = cgroup.add_pid(cloned->pid); !st) return st.error().wrap("placing sandbox");
  }
  if (::write((*sync)[1].get(), "g", 1) != 1) return Error::from_errno("releasing sandbox init");

  // Phase 1: the child builds its root and unshares its user namespace, then asks for maps.
  pollfd fds[2] = {{(*notify)[0].get(), POLLIN, 0}, {error_fd, POLLIN, 0}};
  int rc;
  do {
    rc = ::poll(fds, 2, kSetupTimeoutMs);
  } while (rc < 0 && errno == EINTR);
  if (rc <= 0) return Error::from_errno("waiting for sandbox setup", rc == 0 ? ETIMEDOUT : errno);
  char byte;
  if ((fds[0].revents & POLLIN) == 0 || ::read(fds[0].fd, &byte, 1) != 1) return child_failed();

  if (auto st = sys::write_single_id_maps(cloned->pid, plan.inside_uid, plan.outside_uid,
                                          plan.inside_gid, plan.outside_gid);
      !st)
    return st.error().wrap("writing the sandbox's id maps");
  if (::write((*sync)[1].get(), "m", 1) != 1) return Error::from_errno("releasing sandbox init");
  // Init locks itself down and forks the agent meanwhile; the agent's exec waits for this byte,
  // so nothing runs in the sandbox before its egress is captured. (Waiting before the id maps
  // instead put the whole nftables setup in front of init's work.)
  if (auto st = network.wait_configured(); !st) return st.error();
  if (::write((*sync)[1].get(), "n", 1) != 1) return Error::from_errno("releasing the agent");

  // Phase 2: privileges dropped, agent forked. The agent says it is about to exec; EOF after
  // that means it did.
  for (;;) {
    switch (wait_readable(error_fd, kSetupTimeoutMs)) {
      case Wait::kReadable:
        break;
      case Wait::kTimeout:
        return Error::from_errno("waiting for the agent's exec", ETIMEDOUT);
      case Wait::kError:
        return Error::from_errno("waiting for the agent's exec");
    }
    StageRecord record;
    UniqueFd passed;
    if (!read_record(error_fd, &record, &sender, &passed)) break;
    if (record.stage == Stage::kAboutToExec) {
      out.agent_pid = sender;
      continue;
    }
    if (record.stage == Stage::kConnectListener && record.err == 0 && passed) {
      out.connect_listener = std::move(passed);
      continue;
    }
    if (record.stage == Stage::kConnectListener && record.err != 0 && !passed) {
      out.connect_listener_error = record.err;
      continue;
    }
    *failure = record;
    return setup_failed(plan, *failure);
  }
  if (out.agent_pid <= 0) return Error::invalid("the agent never reported before its exec");
  return out;
}

Result<CgroupReaper> CgroupReaper::spawn(const sys::Cgroup& cgroup) {
  auto pipe = sys::make_pipe();
  if (!pipe) return pipe.error();
  // glibc's fork, not a raw clone: the network thread is already running, and fork's handlers
  // leave malloc usable in the child, which cgroup removal needs.
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("starting cgroup reaper");
  if (pid == 0) {
    // Its own session: a signal to the supervisor's process group does not reach it.
    ::setsid();
    (void)::prctl(PR_SET_NAME, "openshell-reap");
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
    const int keep = (*pipe)[0].get();
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    if (keep > 3) ::syscall(SYS_close_range, 3U, static_cast<unsigned>(keep) - 1, 0U);
    ::syscall(SYS_close_range, static_cast<unsigned>(keep) + 1, ~0U, 0U);
    for (;;) {
      char c;
      ssize_t n = ::read(keep, &c, 1);
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      break;  // EOF: the supervisor is gone, by exit or by kill -9
    }
    (void)cgroup.remove();
    ::_exit(0);
  }
  (*pipe)[0].reset();
  // Our child, not reaped yet: the pid cannot have been reused.
  UniqueFd pidfd = sys::pidfd_open(pid);
  if (!pidfd) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Error::from_errno("pidfd_open of the cgroup reaper", err);
  }
  return CgroupReaper(sys::ChildProcess(pid, std::move(pidfd)), std::move((*pipe)[1]));
}

void CgroupReaper::finish() {
  pipe_.reset();
  if (child_.running()) (void)child_.wait();
}

}  // namespace openshell::supervisor
