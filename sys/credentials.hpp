// A user's filesystem identity, taken on by one thread for a while: how the supervisor resolves
// and opens a non-root owner's policy paths with that owner's credentials (DESIGN.md §2), so
// that a sandbox never shows its owner a host file the owner could not reach.
//
// fsuid, fsgid and the supplementary groups are per thread in the kernel; glibc's setgroups()
// changes every thread of the process, so these use the raw system calls. Switching fsuid away
// from 0 drops the file capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, ...) from the
// thread's effective set; switching back restores them from the permitted set.
#pragma once

#include <sys/types.h>

#include <vector>

#include "core/result.hpp"

namespace openshell::sys {

struct UserCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, the primary group included
};

// From the user database: the primary group and every group listing the user (as a login
// would set them). A uid without an entry is an error (ENOENT): nothing to act as.
Result<UserCredentials> credentials_of(uid_t uid);

// For the calling thread, until destroyed: `who`'s fsuid, fsgid and groups. Holds the thread's
// previous groups to restore them (they are not the process's, under a switch of our own).
class ScopedFsIdentity {
 public:
  static Result<ScopedFsIdentity> enter(const UserCredentials& who);
  ScopedFsIdentity(ScopedFsIdentity&& other) noexcept;
  ScopedFsIdentity& operator=(ScopedFsIdentity&&) = delete;
  ScopedFsIdentity(const ScopedFsIdentity&) = delete;
  ScopedFsIdentity& operator=(const ScopedFsIdentity&) = delete;
  ~ScopedFsIdentity();

 private:
  ScopedFsIdentity() = default;
  bool active_ = false;
  uid_t old_fsuid_ = 0;
  gid_t old_fsgid_ = 0;
  std::vector<gid_t> old_groups_;
};

// The same for the pre-exec child: no allocation. Returns 0 or an errno.
int enter_fs_identity_in_child(uid_t uid, gid_t gid, const gid_t* groups, size_t count);
int leave_fs_identity_in_child(const gid_t* groups, size_t count);

}  // namespace openshell::sys
