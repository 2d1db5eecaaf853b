#include "sys/seccomp.hpp"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/netlink.h>

#include <memory>

#include "core/unique_fd.hpp"

namespace openshell::sys {
namespace {

using CtxPtr = std::unique_ptr<void, decltype(&seccomp_release)>;

// Syscalls the agent never needs and that widen the kernel attack surface or reach outside
// the sandbox. Each fails with EPERM so programs see an ordinary permission error.
constexpr const char* kDeniedSyscalls[] = {
    // mounts, old and new API
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    // namespaces of other processes
    "setns",
    // other processes' memory
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    // kernel attack surface
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "keyctl",
    "add_key",
    "request_key",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "quotactl",
    "quotactl_fd",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "vhangup",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "nfsservctl",
    "uselib",
    "iopl",
    "ioperm",
    "fanotify_init",
};

// Socket families an agent may create. NETLINK is allowed for NETLINK_ROUTE only (getifaddrs).
constexpr int kAllowedFamilies[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

int add(void* ctx, uint32_t action, int nr, unsigned count, const scmp_arg_cmp* args) {
  return seccomp_rule_add_array(ctx, action, nr, count, args);
}

// Exports the compiled program so the child only has to hand it to the kernel.
Result<SeccompProgram> export_program(scmp_filter_ctx ctx) {
  UniqueFd mem(::memfd_create("openshell-seccomp", MFD_CLOEXEC));
  if (!mem) return Error::from_errno("memfd_create for seccomp export");
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc < 0)
    return Error{std::error_code(-rc, std::generic_category()), "exporting seccomp program"};
  struct stat st;
  if (::fstat(mem.get(), &st) != 0) return Error::from_errno("sizing seccomp program");
  SeccompProgram program;
  program.instructions.resize(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
  ssize_t n = ::pread(mem.get(), program.instructions.data(),
                      program.instructions.size() * sizeof(sock_filter), 0);
  if (n != static_cast<ssize_t>(program.instructions.size() * sizeof(sock_filter)))
    return Error::from_errno("reading seccomp program");
  return program;
}

}  // namespace

Result<SeccompProgram> build_seccomp_baseline(const SeccompOptions& options) {
  CtxPtr ctx(seccomp_init(SCMP_ACT_ALLOW), &seccomp_release);
  if (!ctx) return Error::invalid("seccomp_init failed");
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  auto fail = [](int rc, const std::string& what) {
    return Error{std::error_code(-rc, std::generic_category()), "seccomp rule for " + what};
  };

  for (const char* name : kDeniedSyscalls) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = add(ctx.get(), eperm, nr, 0, nullptr); rc < 0) return fail(rc, name);
  }
  if (!options.allow_memfd_create)
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(memfd_create), 0, nullptr); rc < 0)
      return fail(rc, "memfd_create");

  // clone3 passes its flags in memory that seccomp cannot read: ENOSYS makes libc fall back to
  // clone, whose flags we can check.
  if (int rc = add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, nullptr); rc < 0)
    return fail(rc, "clone3");
  {
    scmp_arg_cmp arg = SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER);
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(clone), 1, &arg); rc < 0) return fail(rc, "clone");
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(unshare), 1, &arg); rc < 0)
      return fail(rc, "unshare");
  }
  // Set-id bits: whatever the agent writes in its workspace is on the host, where a set-user-id
  // file of the workspace's owner would run as that owner for anyone. The mounts are nosuid in
  // the sandbox; this keeps the bits from being set at all: by chmod, or at creation (open and
  // creat honour them with O_CREAT or O_TMPFILE, mknod for a regular file). openat2 and
  // fchmodat2 carry what we would check in memory seccomp cannot read: ENOSYS makes libc fall
  // back to openat and fchmodat.
  {
    constexpr int kOpenat2 = 437;     // asm-generic numbering, the same on every architecture
    constexpr int kFchmodat2 = 452;   // newer than this libseccomp and these headers
    for (int nr : {kOpenat2, kFchmodat2})
      if (int rc = add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0, nullptr); rc < 0)
        return fail(rc, "openat2/fchmodat2");
    struct ModeArg {
      int nr;
      unsigned mode_arg;
      int flags_arg;  // -1: the mode always applies
    };
    const ModeArg mode_args[] = {
        {SCMP_SYS(chmod), 1, -1},   {SCMP_SYS(fchmod), 1, -1}, {SCMP_SYS(fchmodat), 2, -1},
        {SCMP_SYS(mknod), 1, -1},   {SCMP_SYS(mknodat), 2, -1}, {SCMP_SYS(creat), 1, -1},
        {SCMP_SYS(open), 2, 1},     {SCMP_SYS(openat), 3, 2},
    };
    for (const ModeArg& m : mode_args) {
      if (m.nr < 0) continue;  // not on this architecture (open, creat, chmod on arm64)
      for (uint32_t bit : {static_cast<uint32_t>(S_ISUID), static_cast<uint32_t>(S_ISGID)}) {
        const scmp_arg_cmp mode{m.mode_arg, SCMP_CMP_MASKED_EQ, bit, bit};
        if (m.flags_arg < 0) {
          if (int rc = add(ctx.get(), eperm, m.nr, 1, &mode); rc < 0) return fail(rc, "set-id");
          continue;
        }
        // Without O_CREAT or O_TMPFILE the mode is ignored, and may be anything.
        for (uint32_t create : {static_cast<uint32_t>(O_CREAT), static_cast<uint32_t>(__O_TMPFILE)}) {
          const scmp_arg_cmp both[2] = {
              mode, {static_cast<unsigned>(m.flags_arg), SCMP_CMP_MASKED_EQ, create, create}};
          if (int rc = add(ctx.get(), eperm, m.nr, 2, both); rc < 0) return fail(rc, "set-id");
        }
      }
    }
  }
  // Terminal input injection into whatever terminal the agent holds.
  for (unsigned long req :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    scmp_arg_cmp arg = SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, req);
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(ioctl), 1, &arg); rc < 0) return fail(rc, "ioctl");
  }
  // socket(): every family outside the allow list, and netlink other than NETLINK_ROUTE.
  // The family is an int: compare its low 32 bits. Denied families are covered by aligned
  // blocks (value under a mask), eleven rules instead of sixty, which halves the compile time
  // paid at every sandbox start.
  constexpr uint32_t kFamilyLimit = 64;  // above AF_MAX on every kernel we target
  auto allowed = [](uint32_t family) {
    for (int a : kAllowedFamilies)
      if (static_cast<uint32_t>(a) == family) return true;
    return false;
  };
  for (uint32_t family = 0; family < kFamilyLimit;) {
    if (allowed(family)) {
      ++family;
      continue;
    }
    uint32_t size = 1;
    for (;;) {  // grow while the doubled block stays aligned, in range and all-denied
      const uint32_t next = size * 2;
      if (family % next != 0 || family + next > kFamilyLimit) break;
      bool all_denied = true;
      for (uint32_t f = family + size; f < family + next; ++f)
        all_denied = all_denied && !allowed(f);
      if (!all_denied) break;
      size = next;
    }
    scmp_arg_cmp arg = SCMP_A0_32(SCMP_CMP_MASKED_EQ, ~(size - 1), family);
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(socket), 1, &arg); rc < 0)
      return fail(rc, "socket");
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(socketpair), 1, &arg); rc < 0)
      return fail(rc, "socketpair");
    family += size;
  }
  {
    scmp_arg_cmp big = SCMP_A0_32(SCMP_CMP_GE, kFamilyLimit);
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(socket), 1, &big); rc < 0)
      return fail(rc, "socket");
    scmp_arg_cmp args[2] = {SCMP_A0_32(SCMP_CMP_EQ, AF_NETLINK),
                            SCMP_A2_32(SCMP_CMP_NE, NETLINK_ROUTE)};
    if (int rc = add(ctx.get(), eperm, SCMP_SYS(socket), 2, args); rc < 0)
      return fail(rc, "socket(AF_NETLINK)");
  }

  return export_program(ctx.get());
}

Result<SeccompProgram> build_connect_notify() {
  CtxPtr ctx(seccomp_init(SCMP_ACT_ALLOW), &seccomp_release);
  if (!ctx) return Error::invalid("seccomp_init failed");
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_NOTIFY, SCMP_SYS(connect), 0); rc < 0)
    return Error{std::error_code(-rc, std::generic_category()), "seccomp notify rule for connect"};
  return export_program(ctx.get());
}

int seccomp_install_listener_in_child(const SeccompProgram& program, int* listener) {
  sock_fprog prog{static_cast<unsigned short>(program.instructions.size()),
                  const_cast<sock_filter*>(program.instructions.data())};  // NOLINT
  const long fd = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (fd < 0) return errno;
  *listener = static_cast<int>(fd);
  return 0;
}

int seccomp_install_in_child(const SeccompProgram& program) {
  sock_fprog prog{static_cast<unsigned short>(program.instructions.size()),
                  const_cast<sock_filter*>(program.instructions.data())};  // NOLINT
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace openshell::sys
