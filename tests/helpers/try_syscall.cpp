// try_syscall CASE... : attempts privileged or sandbox-relevant system calls and prints, per case,
// "CASE ok" or "CASE errno=ENAME" (see probe_output.hpp). "all" runs every case.
//
// Each case runs in its own forked child so that whatever it changes (namespaces, credentials,
// root directory, personality, ptrace links) or whatever kills it (a seccomp RET_KILL) touches
// only that case. A child killed by a signal prints "CASE signal=SIGNAME". A case whose success
// could harm the host, run in the initial user namespace while holding the capability it needs,
// prints "CASE skipped-host-root" instead (module load/unload, kexec). Every other case makes the
// real attempt; where a success would be harmful, its arguments make the kernel fail it right
// after the permission check (the comment on each case says which errno then means "allowed").
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "probe_output.hpp"

// Installed kernel headers are 6.1 while the kernel is newer; the numbers of syscalls from 424
// on are shared by all architectures, so these fallbacks are portable.
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef MOUNT_ATTR_SIZE_VER0
#define MOUNT_ATTR_SIZE_VER0 32
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef NETLINK_SOCK_DIAG
#define NETLINK_SOCK_DIAG 4
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#ifndef READ_IMPLIES_EXEC
#define READ_IMPLIES_EXEC 0x0400000
#endif

namespace {

using openshell::probe::errno_name;
using openshell::probe::print_result;
using openshell::probe::signal_name;
using openshell::probe::usage_exit;

// Caps the time one case may take (a stuck ptrace wait, a hung socket family) so a run
// always finishes; a case killed by it prints "signal=SIGALRM".
constexpr unsigned kCaseTimeoutSeconds = 10;

// Set once in main, before any case forks.
bool g_initial_user_ns = true;

// errno of a failed call, captured right at the call, or 0.
int result_of(long rc) { return rc == -1 ? errno : 0; }

// The initial user namespace maps every uid onto itself. When the map cannot be read we
// assume the host, because that side only skips cases, never runs a harmful one.
bool in_initial_user_ns() {
  FILE* f = std::fopen("/proc/self/uid_map", "re");
  if (f == nullptr) return true;
  unsigned long inside = 1;
  unsigned long outside = 1;
  unsigned long count = 0;
  char extra = 0;
  const int fields = std::fscanf(f, "%lu %lu %lu", &inside, &outside, &count);
  const bool one_line = std::fscanf(f, " %c", &extra) == EOF;
  std::fclose(f);
  return fields == 3 && one_line && inside == 0 && outside == 0 && count == 4294967295UL;
}

bool has_effective_cap(int cap) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  __user_cap_data_struct data[2]{};
  // Unknown capabilities count as held: the caller then takes the harmless path.
  if (syscall(SYS_capget, &header, data) != 0) return true;
  const unsigned index = static_cast<unsigned>(cap) / 32;
  const unsigned bit = static_cast<unsigned>(cap) % 32;
  return ((data[index].effective >> bit) & 1U) != 0;
}

// True when a successful call needing `cap` would act on the real host.
bool host_capable(int cap) { return g_initial_user_ns && has_effective_cap(cap); }

// An existing directory that is certainly not a mount point, for calls that must fail with
// EINVAL after their permission check instead of unmounting or pivoting something real (even
// inside a sandbox, losing its /proc or root would spoil the following cases).
class NonMountDir {
 public:
  NonMountDir() {
    std::strcpy(path_, "/tmp/openshell-probe.XXXXXX");
    made_ = mkdtemp(path_) != nullptr;
    // Read-only /tmp: a procfs directory is never a mount point either.
    if (!made_) std::strcpy(path_, "/proc/self/fd");
  }
  ~NonMountDir() {
    if (made_) rmdir(path_);
  }
  NonMountDir(const NonMountDir&) = delete;
  NonMountDir& operator=(const NonMountDir&) = delete;
  const char* path() const { return path_; }

 private:
  char path_[64];
  bool made_ = false;
};

// Reaps a child created by a raw clone/clone3 in the case process.
int reap_clone(long pid) {
  if (pid == 0) _exit(0);  // the new child: exit at once
  if (pid == -1) return errno;
  waitpid(static_cast<pid_t>(pid), nullptr, __WALL);
  return 0;
}

int try_socket(int domain, int type, int protocol) {
  const int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
  if (fd == -1) return errno;
  close(fd);
  return 0;
}

// tmpfs on a fresh directory under /tmp (on /tmp itself if none can be made), unmounted at
// once, so even real root on the host leaves nothing behind.
int case_mount() {
  char dir[] = "/tmp/openshell-probe.XXXXXX";
  const bool made = mkdtemp(dir) != nullptr;
  const char* target = made ? dir : "/tmp";
  const int err = result_of(mount("openshell-probe", target, "tmpfs",
                                  MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0700"));
  if (err == 0) umount2(target, MNT_DETACH);
  if (made) rmdir(dir);
  return err;
}

// Not /proc: see NonMountDir. Allowed -> EINVAL (not a mount point).
int case_umount() {
  const NonMountDir dir;
  return result_of(umount2(dir.path(), MNT_DETACH));
}

// Allowed -> EINVAL (new_root is not a mount point).
int case_pivot_root() {
  const NonMountDir dir;
  return result_of(syscall(SYS_pivot_root, dir.path(), dir.path()));
}

int case_unshare_user() { return result_of(unshare(CLONE_NEWUSER)); }
int case_unshare_mount() { return result_of(unshare(CLONE_NEWNS)); }

int case_clone_newuser() {
  // Stack 0 makes clone behave like fork; all pointer arguments are null, so the
  // per-architecture argument order does not matter.
  return reap_clone(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, nullptr, nullptr, 0));
}

int case_clone3() {
  // struct clone_args, version 0 (64 bytes); spelled out so no <linux/sched.h> clash with glibc.
  struct {
    std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  } args{};
  args.exit_signal = SIGCHLD;
  return reap_clone(syscall(SYS_clone3, &args, sizeof args));
}

int case_setns() {
  const int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return errno;  // no /proc: reports the open's errno
  return result_of(setns(fd, CLONE_NEWNET));
}

int case_ptrace_attach() {
  // On the host, never stop init: PTRACE_SEIZE runs the same permission checks without a
  // SIGSTOP, and the tracer's exit detaches.
  if (host_capable(CAP_SYS_PTRACE)) return result_of(ptrace(PTRACE_SEIZE, 1, nullptr, nullptr));
  if (ptrace(PTRACE_ATTACH, 1, nullptr, nullptr) == -1) return errno;
  // Attached (pid 1 may even be our own parent): wait, bounded, for its stop, then detach
  // with no signal so it resumes as if nothing happened.
  for (int i = 0; i < 200; ++i) {
    int status = 0;
    if (waitpid(1, &status, __WALL | WNOHANG) == 1) break;
    usleep(5000);
  }
  ptrace(PTRACE_DETACH, 1, nullptr, nullptr);
  return 0;
}

int case_ptrace_traceme() { return result_of(ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)); }

int case_bpf() {
  // "r0 = 0; exit": the smallest program the verifier accepts.
  bpf_insn prog[2]{};
  prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  prog[0].dst_reg = BPF_REG_0;
  prog[0].imm = 0;
  prog[1].code = BPF_JMP | BPF_EXIT;
  static constexpr char kLicense[] = "GPL";
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insn_cnt = 2;
  attr.insns = reinterpret_cast<std::uintptr_t>(prog);
  attr.license = reinterpret_cast<std::uintptr_t>(kLicense);
  return result_of(syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
}

int case_perf_event_open() {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  attr.disabled = 1;
  // User-space only, so perf_event_paranoid=2 alone does not refuse it.
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  return result_of(
      syscall(SYS_perf_event_open, &attr, /*pid=*/0, /*cpu=*/-1, /*group_fd=*/-1, 0UL));
}

int case_userfaultfd() {
  // User-mode-only faults are allowed unprivileged by default, so a refusal here comes from
  // the sandbox rather than from vm.unprivileged_userfaultfd.
  return result_of(syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
}

int case_io_uring_setup() {
  io_uring_params params{};
  return result_of(syscall(SYS_io_uring_setup, 1, &params));
}

// Skipped on the host (see main). Allowed -> EINVAL: no segments, and an architecture
// number no kernel has, checked after CAP_SYS_BOOT.
int case_kexec_load() {
  constexpr unsigned long kForeignArch = 0xffff0000UL;
  return result_of(syscall(SYS_kexec_load, 0UL, 0UL, nullptr, kForeignArch));
}

// Skipped on the host. Allowed -> ENOEXEC (an empty image has no ELF header).
int case_init_module() {
  static char empty[1];
  return result_of(syscall(SYS_init_module, empty, 0UL, ""));
}

// Skipped on the host. Allowed -> EINVAL/ENOEXEC (/dev/null reads as an empty image).
int case_finit_module() {
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return errno;
  return result_of(syscall(SYS_finit_module, fd, "", 0));
}

// Skipped on the host. Allowed -> ENOENT.
int case_delete_module() {
  return result_of(syscall(SYS_delete_module, "nonexistent", O_NONBLOCK));
}

int case_keyctl() {
  return result_of(
      syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, /*create=*/0));
}

// The process keyring dies with the case process.
int case_add_key() {
  return result_of(
      syscall(SYS_add_key, "user", "openshell-probe", "x", 1UL, KEY_SPEC_PROCESS_KEYRING));
}

// No callout info, so no upcall. Allowed -> ENOKEY.
int case_request_key() {
  return result_of(syscall(SYS_request_key, "user", "openshell-probe-absent", nullptr, 0));
}

// Both ioctls pass a null argument: the kernel checks permission (controlling tty or
// CAP_SYS_ADMIN, and dev.tty.legacy_tiocsti) before reading it, so an allowed call fails
// with EFAULT and never pushes a byte into anyone's terminal. ENOTTY: fd 0 is no tty.
int case_ioctl_tiocsti() { return result_of(ioctl(0, TIOCSTI, nullptr)); }
int case_ioctl_tioclinux() { return result_of(ioctl(0, TIOCLINUX, nullptr)); }

// Opened, never written.
int case_write_proc_sys() {
  const int fd = open("/proc/sys/kernel/hostname", O_WRONLY | O_CLOEXEC);
  if (fd == -1) return errno;
  close(fd);
  return 0;
}

int case_chroot() { return result_of(chroot(".")); }

// Reads a mapped, readable address of pid 1 when /proc/1/maps shows one; otherwise an address
// below any usual mapping, where an allowed read fails with EFAULT.
int case_process_vm_readv() {
  unsigned long address = 0x10000;
  if (FILE* maps = std::fopen("/proc/1/maps", "re"); maps != nullptr) {
    unsigned long start = 0;
    unsigned long end = 0;
    char perms[8] = {};
    while (std::fscanf(maps, "%lx-%lx %7s%*[^\n]", &start, &end, perms) == 3) {
      if (perms[0] == 'r') {
        address = start;
        break;
      }
    }
    std::fclose(maps);
  }
  char buf[8];
  iovec local{buf, sizeof buf};
  // An address in another process: a number, never dereferenced here.
  iovec remote{reinterpret_cast<void*>(address), sizeof buf};  // NOLINT(performance-no-int-to-ptr)
  return result_of(process_vm_readv(1, &local, 1, &remote, 1, 0));
}

int case_open_proc1_mem() {
  const int fd = open("/proc/1/mem", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return errno;
  close(fd);
  return 0;
}

int case_memfd_create() { return result_of(memfd_create("openshell-probe", MFD_CLOEXEC)); }

int case_open_by_handle_at() {
  const int mount_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mount_fd == -1) return errno;
  // A real handle of "/" when name_to_handle_at is allowed; else a made-up one, which an
  // allowed open_by_handle_at rejects with ESTALE after its capability check.
  union {
    file_handle handle;
    char storage[sizeof(file_handle) + MAX_HANDLE_SZ];
  } fh{};
  fh.handle.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, "/", &fh.handle, &mount_id, 0) == -1) {
    std::memset(&fh, 0, sizeof fh);
    fh.handle.handle_bytes = 8;
    fh.handle.handle_type = 1;  // FILEID_INO32_GEN
  }
  return result_of(open_by_handle_at(mount_fd, &fh.handle, O_RDONLY | O_CLOEXEC));
}

int case_setuid_root() { return result_of(setuid(0)); }

int case_fsopen() { return result_of(syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC)); }

// A detached copy of the tree; it dissolves when the fd closes.
int case_open_tree() {
  return result_of(syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
}

// An all-zero attribute set: the kernel runs may_mount() first and then returns early, so an
// allowed call changes nothing.
int case_mount_setattr() {
  unsigned char attr[MOUNT_ATTR_SIZE_VER0] = {};
  return result_of(syscall(SYS_mount_setattr, AT_FDCWD, "/", 0U, attr, sizeof attr));
}

// may_mount() runs before the path lookups. Allowed -> ENOENT.
int case_move_mount() {
  return result_of(
      syscall(SYS_move_mount, AT_FDCWD, "/nonexistent-openshell-probe", AT_FDCWD, "/tmp", 0U));
}

// Set-id bits on files in the working directory (the workspace in a sandbox): each case makes
// its own file. Allowed -> ok (and a set-id file there).
constexpr mode_t kSetuid = S_ISUID | 0755;
int fresh_file(const char* name) {
  unlink(name);
  const int fd = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}
int case_chmod_setuid() {
  if (fresh_file("probe-chmod-setuid") != 0) return errno;
  return result_of(chmod("probe-chmod-setuid", kSetuid));
}
int case_chmod_setgid() {
  if (fresh_file("probe-chmod-setgid") != 0) return errno;
  return result_of(chmod("probe-chmod-setgid", S_ISGID | 0755));
}
int case_chmod_plain() {
  if (fresh_file("probe-chmod-plain") != 0) return errno;
  return result_of(chmod("probe-chmod-plain", 0700));
}
int case_fchmod_setuid() {
  unlink("probe-fchmod");
  const int fd = open("probe-fchmod", O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
  if (fd < 0) return errno;
  return result_of(fchmod(fd, kSetuid));
}
int case_fchmodat_setuid() {
  if (fresh_file("probe-fchmodat") != 0) return errno;
  return result_of(syscall(SYS_fchmodat, AT_FDCWD, "probe-fchmodat", kSetuid));
}
int case_fchmodat2_setuid() {
  if (fresh_file("probe-fchmodat2") != 0) return errno;
  return result_of(syscall(452, AT_FDCWD, "probe-fchmodat2", kSetuid, 0));
}
int case_open_creat_setuid() {
  unlink("probe-open-setuid");
  return result_of(syscall(SYS_openat, AT_FDCWD, "probe-open-setuid",
                           O_WRONLY | O_CREAT | O_CLOEXEC, kSetuid));
}
int case_creat_setuid() {
  unlink("probe-creat-setuid");
  return result_of(syscall(SYS_creat, "probe-creat-setuid", kSetuid));
}
int case_mknod_setuid() {
  unlink("probe-mknod-setuid");
  return result_of(mknod("probe-mknod-setuid", S_IFREG | kSetuid, 0));
}
// openat2's mode is in memory seccomp cannot read: refused as missing, libc falls back.
int case_openat2() {
  struct {
    uint64_t flags, mode, resolve;
  } how = {O_WRONLY | O_CREAT | O_CLOEXEC, kSetuid, 0};
  unlink("probe-openat2");
  return result_of(syscall(437, AT_FDCWD, "probe-openat2", &how, sizeof how));
}
// An open that creates nothing ignores its mode, whatever it holds: never refused for it.
int case_open_existing_any_mode() {
  if (fresh_file("probe-open-existing") != 0) return errno;
  return result_of(syscall(SYS_openat, AT_FDCWD, "probe-open-existing", O_RDONLY | O_CLOEXEC,
                           kSetuid));
}
// "ok" when the working directory's mount is nosuid.
int case_cwd_nosuid() {
  struct statvfs sv;
  if (statvfs(".", &sv) != 0) return errno;
  return (sv.f_flag & ST_NOSUID) != 0 ? 0 : ENOTSUP;
}

int case_personality_readimplies() {
  // personality() returns the previous persona, so only -1 is a failure.
  return result_of(personality(READ_IMPLIES_EXEC));
}

struct Case {
  const char* name;
  int (*attempt)();
  // A case whose success on the host would be harmful in itself is skipped when we run in the
  // initial user namespace holding this capability; -1 if it is always safe to attempt.
  int host_skip_cap;
};

constexpr Case kCases[] = {
    {"mount", case_mount, -1},
    {"umount", case_umount, -1},
    {"pivot_root", case_pivot_root, -1},
    {"unshare_user", case_unshare_user, -1},
    {"unshare_mount", case_unshare_mount, -1},
    {"clone_newuser", case_clone_newuser, -1},
    {"clone3", case_clone3, -1},
    {"setns", case_setns, -1},
    {"ptrace_attach", case_ptrace_attach, -1},
    {"ptrace_traceme", case_ptrace_traceme, -1},
    {"bpf", case_bpf, -1},
    {"perf_event_open", case_perf_event_open, -1},
    {"userfaultfd", case_userfaultfd, -1},
    {"io_uring_setup", case_io_uring_setup, -1},
    {"kexec_load", case_kexec_load, CAP_SYS_BOOT},
    {"init_module", case_init_module, CAP_SYS_MODULE},
    {"finit_module", case_finit_module, CAP_SYS_MODULE},
    {"delete_module", case_delete_module, CAP_SYS_MODULE},
    {"keyctl", case_keyctl, -1},
    {"add_key", case_add_key, -1},
    {"request_key", case_request_key, -1},
    {"socket_packet", [] { return try_socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)); }, -1},
    {"socket_netlink_sock_diag", [] { return try_socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG); },
     -1},
    {"socket_netlink_route", [] { return try_socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }, -1},
    {"socket_inet", [] { return try_socket(AF_INET, SOCK_STREAM, 0); }, -1},
    {"socket_inet6", [] { return try_socket(AF_INET6, SOCK_STREAM, 0); }, -1},
    {"socket_unix", [] { return try_socket(AF_UNIX, SOCK_STREAM, 0); }, -1},
    {"socket_vsock", [] { return try_socket(AF_VSOCK, SOCK_STREAM, 0); }, -1},
    {"ioctl_tiocsti", case_ioctl_tiocsti, -1},
    {"ioctl_tioclinux", case_ioctl_tioclinux, -1},
    {"write_proc_sys", case_write_proc_sys, -1},
    {"chroot", case_chroot, -1},
    {"process_vm_readv", case_process_vm_readv, -1},
    {"open_proc1_mem", case_open_proc1_mem, -1},
    {"memfd_create", case_memfd_create, -1},
    {"open_by_handle_at", case_open_by_handle_at, -1},
    {"setuid_root", case_setuid_root, -1},
    {"fsopen", case_fsopen, -1},
    {"open_tree", case_open_tree, -1},
    {"mount_setattr", case_mount_setattr, -1},
    {"move_mount", case_move_mount, -1},
    {"personality_readimplies", case_personality_readimplies, -1},
    {"chmod_setuid", case_chmod_setuid, -1},
    {"chmod_setgid", case_chmod_setgid, -1},
    {"chmod_plain", case_chmod_plain, -1},
    {"fchmod_setuid", case_fchmod_setuid, -1},
    {"fchmodat_setuid", case_fchmodat_setuid, -1},
    {"fchmodat2_setuid", case_fchmodat2_setuid, -1},
    {"open_creat_setuid", case_open_creat_setuid, -1},
    {"creat_setuid", case_creat_setuid, -1},
    {"mknod_setuid", case_mknod_setuid, -1},
    {"openat2", case_openat2, -1},
    {"open_existing_any_mode", case_open_existing_any_mode, -1},
    {"cwd_nosuid", case_cwd_nosuid, -1},
};

const Case* find_case(const char* name) {
  for (const Case& c : kCases) {
    if (std::strcmp(c.name, name) == 0) return &c;
  }
  return nullptr;
}

void run_case(const Case& c) {
  if (c.host_skip_cap >= 0 && host_capable(c.host_skip_cap)) {
    std::printf("%s skipped-host-root\n", c.name);
    std::fflush(stdout);
    return;
  }
  const pid_t pid = fork();
  if (pid == -1) {
    // Not "CASE errno=": the case itself was never attempted.
    std::printf("%s not-run fork errno=%s\n", c.name, errno_name(errno));
    std::fflush(stdout);
    return;
  }
  if (pid == 0) {
    alarm(kCaseTimeoutSeconds);
    const int err = c.attempt();
    // errno values fit the exit status (all are below 256).
    _exit(err & 0xff);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    std::printf("%s signal=%s\n", c.name, signal_name(WTERMSIG(status)));
    std::fflush(stdout);
    return;
  }
  print_result(c.name, WEXITSTATUS(status));
}

// One line naming every case, so a typo is answered with the valid spellings.
[[noreturn]] void usage_exit_with_cases() {
  std::string usage = "try_syscall CASE... with CASE one of: all";
  for (const Case& c : kCases) {
    usage += ' ';
    usage += c.name;
  }
  usage_exit(usage.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage_exit_with_cases();
  // Validate every name first, so a typo never leaves a half-run.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "all") != 0 && find_case(argv[i]) == nullptr) {
      usage_exit_with_cases();
    }
  }
  g_initial_user_ns = in_initial_user_ns();
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "all") == 0) {
      for (const Case& c : kCases) run_case(c);
    } else {
      run_case(*find_case(argv[i]));
    }
  }
  return 0;
}
