#include "sys/pty.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace openshell::sys {

Result<UniqueFd> open_pty_master_beneath(int root, uid_t uid, gid_t gid) {
  open_how how{};
  how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd master(static_cast<int>(::syscall(SYS_openat2, root, "dev/pts/ptmx", &how, sizeof how)));
  if (!master) return Error::from_errno("opening the sandbox's /dev/pts/ptmx");
  struct stat st {};
  if (::fstat(master.get(), &st) != 0) return Error::from_errno("stat of the sandbox's ptmx");
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2)
    return Error::invalid("the sandbox's /dev/pts/ptmx is no pty multiplexer");
  int unlock = 0;
  if (::ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) return Error::from_errno("unlocking the pty");
  UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) return Error::from_errno("opening the pty's slave");
  if (::fchown(slave.get(), uid, gid) != 0) return Error::from_errno("giving the pty to its user");
  return master;
}

}  // namespace openshell::sys
