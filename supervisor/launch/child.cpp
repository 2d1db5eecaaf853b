#include "supervisor/launch/child.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/mount.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>

#include "supervisor/launch/exec_wire.hpp"
#include "supervisor/launch/stage.hpp"
#include "sys/credentials.hpp"
#include "sys/mount.hpp"
#include "sys/process.hpp"
#include "sys/unix_socket.hpp"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

namespace openshell::supervisor {
namespace {

constexpr int kSetupFailedExit = 125;
constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

volatile sig_atomic_t g_agent_pid = 0;
volatile sig_atomic_t g_child_exited_fd = -1;  // init's self-pipe: a byte per SIGCHLD

void forward_signal(int sig) {
  const pid_t pid = g_agent_pid;
  if (pid > 0) ::kill(pid, sig);
}

void note_child_exit(int) {
  const int saved = errno;
  const int fd = g_child_exited_fd;
  if (fd >= 0) (void)!::write(fd, "c", 1);
  errno = saved;
}

[[noreturn]] void fail(int error_fd, Stage stage, int err, int detail = -1) {
  StageRecord record{stage, err, detail};
  (void)!::write(error_fd, &record, sizeof record);
  ::_exit(kSetupFailedExit);
}

bool read_byte(int fd) {
  char c;
  ssize_t n;
  do {
    n = ::read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

// Closes every fd >= 3 except the sorted `keep` list.
int close_all_but(const int* keep, int count) {
  unsigned int next = 3;
  for (int i = 0; i < count; ++i) {
    const unsigned int k = static_cast<unsigned int>(keep[i]);
    if (k > next && ::syscall(SYS_close_range, next, k - 1, 0) != 0) return errno;
    if (k >= next) next = k + 1;
  }
  if (::syscall(SYS_close_range, next, ~0U, 0) != 0) return errno;
  return 0;
}

void sort_small(int* a, int n) {
  for (int i = 1; i < n; ++i)
    for (int j = i; j > 0 && a[j - 1] > a[j]; --j) {
      int t = a[j];
      a[j] = a[j - 1];
      a[j - 1] = t;
    }
}

int make_dev_in_child(const char* dev) {
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  constexpr Node kNodes[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                             {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  char path[4096];
  for (const Node& n : kNodes) {
    std::snprintf(path, sizeof path, "%s/%s", dev, n.name);
    if (::mknod(path, S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) return errno;
  }
  struct Link {
    const char* name;
    const char* target;
  };
  constexpr Link kLinks[] = {{"fd", "/proc/self/fd"},
                             {"stdin", "/proc/self/fd/0"},
                             {"stdout", "/proc/self/fd/1"},
                             {"stderr", "/proc/self/fd/2"},
                             {"ptmx", "pts/ptmx"}};
  for (const Link& l : kLinks) {
    std::snprintf(path, sizeof path, "%s/%s", dev, l.name);
    if (::symlink(l.target, path) != 0) return errno;
  }
  std::snprintf(path, sizeof path, "%s/pts", dev);
  if (::mkdir(path, 0755) != 0) return errno;
  if (::mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620") != 0)
    return errno;
  std::snprintf(path, sizeof path, "%s/shm", dev);
  if (::mkdir(path, 01777) != 0) return errno;
  return 0;
}

int make_proc_in_child(const char* proc) {
  if (int err = sys::mkdir_p_in_child(proc); err != 0) return err;
  if (::mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return errno;
  // Kernel knobs stay read-only even where a file's mode would allow a write.
  constexpr const char* kReadOnly[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
  char path[4096];
  for (const char* sub : kReadOnly) {
    std::snprintf(path, sizeof path, "%s/%s", proc, sub);
    struct stat st;
    if (::stat(path, &st) != 0) continue;
    if (int err = sys::bind_path_in_child(path, path); err != 0) return err;
    if (int err = sys::mount_setattr_in_child(
            path, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            /*recursive=*/true);
        err != 0)
      return err;
  }
  return 0;
}

int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

int write_new_file_in_child(const char* path, const std::string& content) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return errno;
  int err = write_all(fd, content.data(), content.size());
  ::close(fd);
  return err;
}

// Whether a file can be bound at `path` in the assembly: a regular file is there, or a new one
// can be made (on the assembly's own tmpfs). A symlink cannot take one (the bind would follow
// it, out of the assembly), nor can a name that a read-only bind of a host directory lacks.
bool file_bindable_in_child(const char* path) {
  struct stat st;
  if (::lstat(path, &st) == 0) return S_ISREG(st.st_mode);
  return errno == ENOENT && sys::touch_in_child(path) == 0;
}

int generated_file_in_child(const MountEntry& m, size_t index) {
  char staging[64];
  std::snprintf(staging, sizeof staging, "%s/.openshell-generated-%zu", kAssemblyBase, index);
  if (int err = write_new_file_in_child(staging, m.content); err != 0) return err;
  int err = 0;
  if ((err = sys::bind_path_in_child(staging, m.stage_path.c_str())) != 0) return err;
  if ((err = sys::mount_setattr_in_child(
           m.stage_path.c_str(),
           MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
           /*recursive=*/false)) != 0)
    return err;
  // The bind keeps the inode; the name in the root goes.
  if (::unlink(staging) != 0) return errno;
  return 0;
}

// The generated files of the directory holding plan.mounts[first], i.e. the kGeneratedFile
// entries beneath that parent (its own files, and those of new subdirectories such as
// /etc/openshell-tls). Each is bound over its name when all of them can be. Otherwise the
// directory becomes a read-only overlay with the generated files in a layer above what it held: a
// host's /etc may lack hosts, or have resolv.conf as a symlink (Ubuntu's points into
// /run/systemd/resolve), and the read-only bind of that /etc can neither take a new name nor a bind
// over a link. Sets *stage for a failure.
int generated_dir_in_child(LaunchPlan& plan, size_t first, Stage* stage) {
  *stage = Stage::kMountTarget;
  const std::string& first_path = plan.mounts[first].stage_path;
  const size_t dir_len = first_path.rfind('/');
  char dir[4096];
  if (dir_len == std::string::npos || dir_len == 0 || dir_len >= sizeof dir) return ENAMETOOLONG;
  std::memcpy(dir, first_path.data(), dir_len);
  dir[dir_len] = '\0';
  auto in_dir = [&](const MountEntry& m) {
    return m.kind == MountEntry::Kind::kGeneratedFile && !m.generated_done &&
           m.stage_path.size() > dir_len + 1 && m.stage_path.compare(0, dir_len, dir) == 0 &&
           m.stage_path[dir_len] == '/';
  };
  bool bindable = true;
  for (size_t j = 0; j < plan.mounts.size() && bindable; ++j)
    if (in_dir(plan.mounts[j]))
      bindable = file_bindable_in_child(plan.mounts[j].stage_path.c_str());
  if (bindable) {
    for (size_t j = 0; j < plan.mounts.size(); ++j) {
      if (!in_dir(plan.mounts[j])) continue;
      if (int err = generated_file_in_child(plan.mounts[j], j); err != 0) return err;
      plan.mounts[j].generated_done = true;
    }
    return 0;
  }

  *stage = Stage::kOverlay;
  // overlayfs splits lowerdir at ':' and ','; our own paths have neither, which is checked.
  if (std::strpbrk(dir, ":,\\") != nullptr) return EINVAL;
  // The top layer is a tmpfs of its own, detached once the overlay holds it: in no tree.
  char layer[64];
  std::snprintf(layer, sizeof layer, "%s/.openshell-layer-%zu", kAssemblyBase, first);
  if (::mkdir(layer, 0755) != 0) return errno;
  if (int err = sys::tmpfs_in_child(layer, MS_NOSUID | MS_NODEV, "mode=0755,size=8m,nr_inodes=64");
      err != 0)
    return err;
  for (size_t j = 0; j < plan.mounts.size(); ++j) {
    MountEntry& m = plan.mounts[j];
    if (!in_dir(m)) continue;
    char path[4096 + 64];
    if (std::snprintf(path, sizeof path, "%s%s", layer, m.stage_path.c_str() + dir_len) >=
        static_cast<int>(sizeof path))
      return ENAMETOOLONG;
    // A file of a subdirectory the host's does not have: the subdirectory, in the layer.
    if (char* slash = std::strrchr(path, '/');
        slash != nullptr && m.stage_path.find('/', dir_len + 1) != std::string::npos) {
      *slash = '\0';
      const int err = sys::mkdir_p_in_child(path);
      *slash = '/';
      if (err != 0) return err;
    }
    if (int err = write_new_file_in_child(path, m.content); err != 0) return err;
    m.generated_done = true;
  }
  char options[sizeof dir + sizeof layer + 16];
  if (std::snprintf(options, sizeof options, "lowerdir=%s:%s", layer, dir) >=
      static_cast<int>(sizeof options))
    return ENAMETOOLONG;
  if (::mount("overlay", dir, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, options) != 0)
    return errno;
  if (::umount2(layer, MNT_DETACH) != 0) return errno;
  if (::rmdir(layer) != 0) return errno;
  return 0;
}

// A kGeneratedFile entry not placed yet whose directory holds `stage_path` (a mount beneath it,
// or one of the generated files themselves); plan.mounts.size() if none.
size_t pending_generated_above(const LaunchPlan& plan, const std::string& stage_path) {
  for (size_t j = 0; j < plan.mounts.size(); ++j) {
    const MountEntry& g = plan.mounts[j];
    if (g.kind != MountEntry::Kind::kGeneratedFile || g.generated_done) continue;
    const size_t dir_len = g.stage_path.rfind('/');
    if (dir_len != std::string::npos && stage_path.size() > dir_len &&
        stage_path.compare(0, dir_len + 1, g.stage_path, 0, dir_len + 1) == 0)
      return j;
  }
  return plan.mounts.size();
}

void build_root_in_child(LaunchPlan& plan, int error_fd) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    fail(error_fd, Stage::kMountPrivate, errno);
  // Open every bind source while the host's tree is still in view at every path: a non-root
  // owner's with the owner's credentials (what it could not reach is not bound), in two passes.
  for (const bool owners : {true, false}) {
    if (owners && plan.open_as_owner) {
      if (int err = sys::enter_fs_identity_in_child(plan.owner_uid, plan.owner_gid,
                                                    plan.owner_groups.data(),
                                                    plan.owner_groups.size());
          err != 0)
        fail(error_fd, Stage::kOwnerIdentity, err);
    }
    for (size_t i = 0; i < plan.mounts.size(); ++i) {
      const MountEntry& m = plan.mounts[i];
      if (m.kind != MountEntry::Kind::kBind) continue;
      if ((plan.open_as_owner && m.opened_as_owner) != owners) continue;
      int fd = ::open(m.source.c_str(), O_PATH | O_CLOEXEC);
      if (fd < 0) fail(error_fd, Stage::kBindMount, errno, static_cast<int>(i));
      plan.source_fds[i] = fd;
    }
    if (owners && plan.open_as_owner) {
      if (int err = sys::leave_fs_identity_in_child(plan.own_groups.data(), plan.own_groups.size());
          err != 0)
        fail(error_fd, Stage::kOwnerIdentity, err);
    }
  }
  if (int err = sys::tmpfs_in_child(kAssemblyBase, MS_NOSUID | MS_NODEV,
                                    "mode=0755,size=4m,nr_inodes=16384");
      err != 0)
    fail(error_fd, Stage::kMountRoot, err);

  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    const MountEntry& m = plan.mounts[i];
    const int idx = static_cast<int>(i);
    const char* target = m.stage_path.c_str();
    int err = 0;
    // A directory's generated files go in before anything else beneath it: as an overlay they
    // would hide what was mounted there earlier.
    if (const size_t g = pending_generated_above(plan, m.stage_path); g < plan.mounts.size()) {
      Stage stage = Stage::kNone;
      if ((err = generated_dir_in_child(plan, g, &stage)) != 0)
        fail(error_fd, stage, err, static_cast<int>(g));
    }
    switch (m.kind) {
      case MountEntry::Kind::kBind: {
        err = m.source_is_dir ? sys::mkdir_p_in_child(target) : sys::touch_in_child(target);
        if (err != 0) fail(error_fd, Stage::kMountTarget, err, idx);
        if ((err = sys::bind_fd_in_child(plan.source_fds[i], target)) != 0)
          fail(error_fd, Stage::kBindMount, err, idx);
        ::close(plan.source_fds[i]);
        plan.source_fds[i] = -1;
        uint64_t attrs = MOUNT_ATTR_NOSUID;
        if (!m.allow_devices) attrs |= MOUNT_ATTR_NODEV;
        if (m.read_only) attrs |= MOUNT_ATTR_RDONLY;
        if ((err = sys::mount_setattr_in_child(target, attrs, /*recursive=*/true)) != 0)
          fail(error_fd, Stage::kMountAttr, err, idx);
        break;
      }
      case MountEntry::Kind::kSymlink:
        if (::symlink(m.link_target.c_str(), target) != 0 && errno != EEXIST)
          fail(error_fd, Stage::kSymlink, errno, idx);
        break;
      case MountEntry::Kind::kTmpfs:
        if ((err = sys::mkdir_p_in_child(target)) != 0)
          fail(error_fd, Stage::kMountTarget, err, idx);
        if ((err = sys::tmpfs_in_child(target, MS_NOSUID | MS_NODEV, m.tmpfs_options.c_str())) != 0)
          fail(error_fd, Stage::kTmpfs, err, idx);
        break;
      case MountEntry::Kind::kDev:
        if ((err = sys::mkdir_p_in_child(target)) != 0)
          fail(error_fd, Stage::kMountTarget, err, idx);
        if ((err = sys::tmpfs_in_child(target, MS_NOSUID | MS_NOEXEC, m.tmpfs_options.c_str())) !=
            0)
          fail(error_fd, Stage::kDev, err, idx);
        if ((err = make_dev_in_child(target)) != 0) fail(error_fd, Stage::kDev, err, idx);
        break;
      case MountEntry::Kind::kProc:
        if ((err = make_proc_in_child(target)) != 0) fail(error_fd, Stage::kProc, err, idx);
        break;
      case MountEntry::Kind::kGeneratedFile:
        break;  // placed with its directory's set, above
    }
  }

  if (::sethostname(plan.hostname.data(), plan.hostname.size()) != 0)
    fail(error_fd, Stage::kHostname, errno);

  // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours.
  if (::chdir(kAssemblyBase) != 0) fail(error_fd, Stage::kPivotRoot, errno);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) fail(error_fd, Stage::kPivotRoot, errno);
  if (::umount2(".", MNT_DETACH) != 0) fail(error_fd, Stage::kPivotRoot, errno);
  if (::chdir("/") != 0) fail(error_fd, Stage::kPivotRoot, errno);
  if (int err = sys::mount_setattr_in_child(
          "/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, /*recursive=*/false);
      err != 0)
    fail(error_fd, Stage::kRootReadOnly, err);
}

// Installs the connect filter and sends its listener to the supervisor over the launch socket
// (SCM_RIGHTS), then closes our copy: nothing in the sandbox may answer its own connects. A
// kernel without user notification is reported, not fatal: the proxy then finds callers by
// searching /proc instead.
void hand_over_connect_listener(const LaunchPlan& plan, int error_fd) {
  int listener = -1;
  StageRecord record{Stage::kConnectListener, 0, -1};
  record.err = sys::seccomp_install_listener_in_child(plan.connect_notify, &listener);
  const int passed[1] = {listener};
  const int send_err = sys::send_message(error_fd, &record, sizeof record,
                                         std::span(passed, listener >= 0 ? 1 : 0));
  if (listener >= 0) ::close(listener);
  // With the filter in place and nobody holding its listener, every connect would fail.
  if (send_err != 0 && listener >= 0) fail(error_fd, Stage::kConnectListener, send_err);
}

// execve of argv[0], looked up in the plan's PATH when it has no slash. Returns the errno.
int exec_command(const LaunchPlan& plan, char* const* argv, char* const* envp) {
  const char* cmd = argv[0];
  if (std::strchr(cmd, '/') != nullptr) {
    ::execve(cmd, argv, envp);
    return errno;
  }
  int result = ENOENT;
  char path[4096];
  for (const auto& dir : plan.exec_path) {
    if (std::snprintf(path, sizeof path, "%s/%s", dir.c_str(), cmd) >=
        static_cast<int>(sizeof path))
      continue;
    ::execve(path, argv, envp);
    if (errno == EACCES)
      result = EACCES;  // found but not executable: say so, keep looking
    else if (errno != ENOENT && errno != ENOTDIR)
      return errno;
  }
  return result;
}

// What init's children (the agent, an exec'd command) start from: default signal actions and
// the signal mask init had before it blocked everything around the fork.
void reset_signals_in_child(const sigset_t& mask) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig : kForwardedSignals) ::sigaction(sig, &sa, nullptr);
  ::sigaction(SIGCHLD, &sa, nullptr);
  ::sigprocmask(SIG_SETMASK, &mask, nullptr);
}

void send_exec_event(int fd, ExecEventKind kind, uint32_t id, pid_t pid, int value) {
  if (fd < 0) return;
  const ExecEvent event{kind, id, pid, value};
  (void)!::send(fd, &event, sizeof event, MSG_NOSIGNAL | MSG_DONTWAIT);
}

constexpr size_t kMaxExecs = 64;     // commands running at once through exec
constexpr size_t kMaxEnv = 4096;     // the plan's environment plus an exec's additions

struct RunningExec {
  pid_t pid = 0;
  uint32_t id = 0;
};

// One exec request from the supervisor: fork the command with the descriptors that came with
// it as its stdio. Everything static: init allocates nothing.
void start_exec(const LaunchPlan& plan, int exec_fd, RunningExec* running,
                const sigset_t& mask) {
  static char request[kExecRequestMax];
  static char* argv[kExecMaxArgs + 1];
  static char* extra[kExecMaxArgs + 1];
  static char* envp[kMaxEnv + 1];
  iovec iov{request, sizeof request};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 3)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(exec_fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n <= 0) return;
  int fds[3] = {-1, -1, -1};
  int nfds = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + static_cast<size_t>(i) * sizeof(int), sizeof fd);
      if (nfds < 3) {
        fds[nfds++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  auto close_fds = [&] {
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
  };
  ExecSignal kill_request;
  if (static_cast<size_t>(n) == sizeof kill_request && nfds == 0) {
    std::memcpy(&kill_request, request, sizeof kill_request);
    if (kill_request.magic != kExecSignalMagic) return;
    for (size_t i = 0; i < kMaxExecs; ++i)
      if (running[i].pid != 0 && running[i].id == kill_request.id) {
        ::kill(-running[i].pid, kill_request.signal);
        ::kill(running[i].pid, kill_request.signal);  // in case it left its group
      }
    return;
  }
  ExecHeader header;
  const char* cwd = nullptr;
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || (nfds != 1 && nfds != 3) ||
      !parse_exec_request_in_child(request, static_cast<size_t>(n), &header, argv, extra, &cwd)) {
    std::memcpy(&header, request, static_cast<size_t>(n) < sizeof header ? 0 : sizeof header);
    send_exec_event(exec_fd, ExecEventKind::kFailed, header.id, -1, EINVAL);
    close_fds();
    return;
  }
  size_t slot = kMaxExecs;
  for (size_t i = 0; i < kMaxExecs; ++i)
    if (running[i].pid == 0) {
      slot = i;
      break;
    }
  // The sandbox's environment, each entry replaced by an exec's own setting of the same key.
  size_t envc = 0;
  for (char* const* e = plan.envp.data(); *e != nullptr && envc < kMaxEnv; ++e) {
    const char* eq = std::strchr(*e, '=');
    const size_t key = eq == nullptr ? std::strlen(*e) : static_cast<size_t>(eq - *e) + 1;
    bool overridden = false;
    for (uint32_t i = 0; i < header.envc && !overridden; ++i)
      overridden = std::strncmp(extra[i], *e, key) == 0;
    if (!overridden) envp[envc++] = *e;
  }
  for (uint32_t i = 0; i < header.envc && envc < kMaxEnv; ++i) envp[envc++] = extra[i];
  envp[envc] = nullptr;
  if (slot == kMaxExecs) {
    send_exec_event(exec_fd, ExecEventKind::kFailed, header.id, -1, EAGAIN);
    close_fds();
    return;
  }
  const pid_t pid = ::_Fork();
  if (pid == 0) {
    reset_signals_in_child(mask);
    // A session of its own; with a tty, that tty is its controlling terminal.
    ::setsid();
    if ((header.flags & kExecFlagTty) != 0) (void)::ioctl(fds[0], TIOCSCTTY, 0);
    const int in = fds[0], out = nfds == 3 ? fds[1] : fds[0], err = nfds == 3 ? fds[2] : fds[0];
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) {
      send_exec_event(exec_fd, ExecEventKind::kFailed, header.id, ::getpid(), errno);
      ::_exit(126);
    }
    ::umask(022);
    if (::chdir(cwd[0] != '\0' ? cwd : plan.cwd.c_str()) != 0) {
      send_exec_event(exec_fd, ExecEventKind::kNoWorkdir, header.id, ::getpid(), errno);
      ::_exit(126);
    }
    const int error = exec_command(plan, argv, envp);
    send_exec_event(exec_fd, ExecEventKind::kFailed, header.id, ::getpid(), error);
    ::_exit(error == ENOENT ? 127 : 126);
  }
  close_fds();
  if (pid < 0) {
    send_exec_event(exec_fd, ExecEventKind::kFailed, header.id, -1, errno);
    return;
  }
  running[slot] = RunningExec{pid, header.id};
  send_exec_event(exec_fd, ExecEventKind::kStarted, header.id, pid, 0);
}

// Init's life after the agent started: reap every child; report the agent's status and exit
// when it ends (taking the sandbox with it); run exec requests and report how they end.
[[noreturn]] void serve_as_init(const LaunchPlan& plan, const ChildChannels& ch, pid_t agent,
                                int child_exited, const sigset_t& mask) {
  static RunningExec running[kMaxExecs];
  int exec_fd = ch.exec;
  for (;;) {
    pollfd fds[2] = {{child_exited, POLLIN, 0}, {exec_fd, POLLIN, 0}};
    if (::poll(fds, exec_fd >= 0 ? 2 : 1, -1) < 0) continue;  // EINTR: a signal came
    if (fds[0].revents != 0) {
      char drain[64];
      while (::read(child_exited, drain, sizeof drain) > 0) {
      }
    }
    // Reaped on every wake-up, not only for the pipe: a SIGCHLD may have come meanwhile.
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == agent) {
        (void)!::write(ch.status_write, &status, sizeof status);
        ::_exit(0);
      }
      for (auto& r : running)
        if (r.pid == pid) {
          send_exec_event(exec_fd, ExecEventKind::kExited, r.id, pid, status);
          r = RunningExec{};
        }
    }
    if (exec_fd < 0) continue;
    if ((fds[1].revents & POLLIN) != 0) {
      start_exec(plan, exec_fd, running, mask);
    } else if ((fds[1].revents & (POLLHUP | POLLERR)) != 0) {
      exec_fd = -1;  // the supervisor closed its end: no more execs
    }
  }
}

}  // namespace

// Our command line (the supervisor's memory, copied) holds host paths, the control socket and
// the events file, and /proc/1/cmdline is readable in the sandbox: it becomes "openshell-init".
// The rest of the area is zeroed first, so a kernel that refuses the new end shows nothing more.
void hide_command_line_in_child(const LaunchPlan& plan) {
  static constexpr char kTitle[] = "openshell-init";
  if (plan.arg_start == 0 || plan.arg_end <= plan.arg_start + sizeof kTitle) return;
  char* area = reinterpret_cast<char*>(plan.arg_start);  // NOLINT(performance-no-int-to-ptr)
  std::memset(area, 0, plan.arg_end - plan.arg_start);
  std::memcpy(area, kTitle, sizeof kTitle);
  (void)::prctl(PR_SET_MM, PR_SET_MM_ARG_END, plan.arg_start + sizeof kTitle, 0, 0);
}

void run_sandbox_init_in_child(LaunchPlan& plan, const ChildChannels& ch) {
  const int error_fd = ch.error_write;
  // We are the sandbox: if the supervisor dies, so do we (and, as pid 1, everything in here).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(error_fd, Stage::kParentGone, errno);
  (void)::prctl(PR_SET_NAME, "openshell-init");
  hide_command_line_in_child(plan);
  // Whatever mask the supervisor runs with, the sandbox starts with every signal deliverable.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::umask(0);
  if (::setns(ch.netns, CLONE_NEWNET) != 0) fail(error_fd, Stage::kNetworkNamespace, errno);
  ::close(ch.netns);

  // Building the root overlaps with the parent placing us in our cgroup (on v1 that write
  // alone can take 15 ms of RCU synchronisation in the kernel).
  build_root_in_child(plan, error_fd);

  // Placed in our cgroup (and the parent still alive) before anything else runs in here.
  if (!read_byte(ch.sync_read)) fail(error_fd, Stage::kParentGone, EPIPE);
  if (::unshare(CLONE_NEWCGROUP) != 0) fail(error_fd, Stage::kCgroupNamespace, errno);

  int keep[] = {ch.sync_read, ch.notify_write, ch.error_write, ch.status_write, ch.exec};
  sort_small(keep, 5);
  if (int err = close_all_but(keep, 5); err != 0) fail(error_fd, Stage::kCloseFds, err);

  // No controlling terminal: nothing in here can push input into the caller's terminal.
  if (::setsid() < 0) fail(error_fd, Stage::kSetsid, errno);

  // The user namespace comes last, after every mount: the mount, pid and network namespaces
  // stay owned by the initial user namespace, where the agent holds nothing.
  if (::unshare(CLONE_NEWUSER) != 0) fail(error_fd, Stage::kUserNamespace, errno);
  if (::write(ch.notify_write, "u", 1) != 1) fail(error_fd, Stage::kIdMapWait, errno);
  if (!read_byte(ch.sync_read)) fail(error_fd, Stage::kIdMapWait, EPIPE);

  if (int err = plan.caps->drop_bounding_in_child(); err != 0)
    fail(error_fd, Stage::kCapBounding, err);
  if (::setgroups(0, nullptr) != 0) fail(error_fd, Stage::kSetgroups, errno);
  if (::setresgid(plan.inside_gid, plan.inside_gid, plan.inside_gid) != 0)
    fail(error_fd, Stage::kSetgid, errno);
  if (::setresuid(plan.inside_uid, plan.inside_uid, plan.inside_uid) != 0)
    fail(error_fd, Stage::kSetuid, errno);
  if (int err = plan.caps->drop_all_in_child(); err != 0) fail(error_fd, Stage::kCapDrop, err);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(error_fd, Stage::kNoNewPrivs, errno);
  // Keeps the agent (same uid) out of init's /proc entries and memory.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail(error_fd, Stage::kDumpable, errno);
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) fail(error_fd, Stage::kRlimitCore, errno);
  int failed_rule = -1;
  if (int err = sys::landlock_apply_in_child(plan.landlock, &failed_rule); err != 0)
    fail(error_fd, Stage::kLandlock, err, failed_rule);
  hand_over_connect_listener(plan, error_fd);
  if (int err = sys::seccomp_install_in_child(plan.seccomp); err != 0)
    fail(error_fd, Stage::kSeccomp, err);

  // Signals from the supervisor reach init; init passes them to the agent. Blocked across fork
  // so that none arrives before we know the agent's pid.
  sigset_t all, old;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &old);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (int sig : kForwardedSignals) ::sigaction(sig, &sa, nullptr);
  // SIGCHLD wakes init's loop (serve_as_init) through a self-pipe.
  int child_exited[2];
  if (::pipe2(child_exited, O_CLOEXEC | O_NONBLOCK) != 0) fail(error_fd, Stage::kFork, errno);
  g_child_exited_fd = child_exited[1];
  sa.sa_handler = note_child_exit;
  ::sigaction(SIGCHLD, &sa, nullptr);

  // _Fork, not fork: fork runs glibc's atfork handlers, which take malloc's arena locks, and
  // another thread of the supervisor may have held one at the moment we were cloned.
  const pid_t agent = ::_Fork();
  if (agent < 0) fail(error_fd, Stage::kFork, errno);
  if (agent == 0) {
    reset_signals_in_child(old);
    ::umask(022);
    if (::chdir(plan.cwd.c_str()) != 0) fail(error_fd, Stage::kChdir, errno);
    // The supervisor's last byte: the sandbox's network is captured. Init read the two before.
    if (!read_byte(ch.sync_read)) fail(error_fd, Stage::kNetworkWait, EPIPE);
    // The kernel attaches our pid to this message, translated into the supervisor's pid
    // namespace: that is how the supervisor learns the agent's host pid, even if it exits at once.
    const StageRecord hello{Stage::kAboutToExec, 0, -1};
    (void)!::write(error_fd, &hello, sizeof hello);
    fail(error_fd, Stage::kExec, exec_command(plan, plan.argv.data(), plan.envp.data()));
  }
  g_agent_pid = agent;
  ::close(error_fd);  // EOF for the parent once the agent's copy closes on exec
  ::close(ch.notify_write);
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  serve_as_init(plan, ch, agent, child_exited[0], old);
}

}  // namespace openshell::supervisor
