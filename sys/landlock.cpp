#include "sys/landlock.hpp"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace openshell::sys {
namespace {

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

// Our own copy of the ABI 6 layout; the 6.1 header's struct lacks the later fields, and the
// kernel accepts any size it knows as long as unknown trailing bytes are zero.
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

constexpr uint64_t kFsV1 = (1ULL << 13) - 1;  // EXECUTE .. MAKE_SYM
constexpr uint64_t kFileRights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
                                 LANDLOCK_ACCESS_FS_IOCTL_DEV;

long ll_create(const RulesetAttr* attr, size_t size, uint32_t flags) {
  return ::syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

}  // namespace

int landlock_abi() {
  long abi = ll_create(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

uint64_t landlock_handled_fs(int abi) {
  if (abi < 1) return 0;
  uint64_t mask = kFsV1;
  if (abi >= 2) mask |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) mask |= LANDLOCK_ACCESS_FS_TRUNCATE;
  if (abi >= 5) mask |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
  return mask;
}

uint64_t landlock_read_exec(int abi) {
  return landlock_handled_fs(abi) &
         (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR);
}

uint64_t landlock_read_write(int abi) { return landlock_handled_fs(abi); }

uint64_t landlock_device_rw(int abi) {
  return landlock_handled_fs(abi) &
         (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
          LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV);
}

uint64_t landlock_file_only(uint64_t access) { return access & kFileRights; }

int landlock_apply_in_child(const LandlockPlan& plan, int* failed_rule) {
  *failed_rule = -1;
  if (plan.abi < 1) return 0;
  RulesetAttr attr{plan.handled_fs, 0, plan.abi >= 6 ? plan.scoped : 0};
  // Pass only the bytes this ABI understands: ABI < 4 knows handled_access_fs alone.
  size_t size = plan.abi >= 6   ? sizeof(RulesetAttr)
                : plan.abi >= 4 ? 2 * sizeof(uint64_t)
                                : sizeof(uint64_t);
  long ruleset = ll_create(&attr, size, 0);
  if (ruleset < 0) return errno;
  const int ruleset_fd = static_cast<int>(ruleset);
  for (size_t i = 0; i < plan.rules.size(); ++i) {
    const LandlockRule& rule = plan.rules[i];
    int fd = ::open(rule.path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      *failed_rule = static_cast<int>(i);
      int err = errno;
      ::close(ruleset_fd);
      return err;
    }
    struct stat st;
    uint64_t access = rule.access & plan.handled_fs;
    if (::fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) access = landlock_file_only(access);
    PathBeneathAttr beneath{access, fd};
    long rc = ::syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0);
    int err = errno;
    ::close(fd);
    if (rc < 0) {
      *failed_rule = static_cast<int>(i);
      ::close(ruleset_fd);
      return err;
    }
  }
  long rc = ::syscall(SYS_landlock_restrict_self, ruleset_fd, 0);
  int err = errno;
  ::close(ruleset_fd);
  return rc < 0 ? err : 0;
}

}  // namespace openshell::sys
