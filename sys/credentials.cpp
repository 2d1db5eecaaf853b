#include "sys/credentials.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace openshell::sys {
namespace {

constexpr size_t kMaxGroups = 65536;  // NGROUPS_MAX

// setfsuid/setfsgid return the previous value and report no error: set, then read it back.
int set_fsuid(uid_t uid) {
  ::syscall(SYS_setfsuid, uid);
  return static_cast<uid_t>(::syscall(SYS_setfsuid, -1)) == uid ? 0 : EPERM;
}
int set_fsgid(gid_t gid) {
  ::syscall(SYS_setfsgid, gid);
  return static_cast<gid_t>(::syscall(SYS_setfsgid, -1)) == gid ? 0 : EPERM;
}
int set_groups(const gid_t* groups, size_t count) {
  return ::syscall(SYS_setgroups, count, groups) == 0 ? 0 : errno;
}

}  // namespace

Result<UserCredentials> credentials_of(uid_t uid) {
  UserCredentials who;
  who.uid = uid;
  std::vector<char> buffer(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = 0;
  while ((rc = ::getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found)) == ERANGE &&
         buffer.size() < (1U << 20))
    buffer.resize(buffer.size() * 2);
  if (rc != 0) return Error::from_errno("looking up uid " + std::to_string(uid), rc);
  if (found == nullptr)
    return Error::from_errno("uid " + std::to_string(uid) + " has no user database entry", ENOENT);
  who.gid = pw.pw_gid;
  int count = 64;
  who.groups.resize(static_cast<size_t>(count));
  while (::getgrouplist(pw.pw_name, pw.pw_gid, who.groups.data(), &count) < 0) {
    if (static_cast<size_t>(count) > kMaxGroups)
      return Error::invalid("uid " + std::to_string(uid) + " is in too many groups");
    who.groups.resize(static_cast<size_t>(count));
  }
  who.groups.resize(static_cast<size_t>(count));
  return who;
}

Result<ScopedFsIdentity> ScopedFsIdentity::enter(const UserCredentials& who) {
  ScopedFsIdentity scope;
  scope.old_fsuid_ = static_cast<uid_t>(::syscall(SYS_setfsuid, -1));
  scope.old_fsgid_ = static_cast<gid_t>(::syscall(SYS_setfsgid, -1));
  const int n = ::getgroups(0, nullptr);
  if (n < 0) return Error::from_errno("getgroups");
  scope.old_groups_.resize(static_cast<size_t>(n));
  if (n > 0 && ::getgroups(n, scope.old_groups_.data()) != n) return Error::from_errno("getgroups");
  // Groups and gid first: once fsuid is the user's, we may no longer change them.
  if (int err = set_groups(who.groups.data(), who.groups.size()); err != 0)
    return Error::from_errno("taking on the groups of uid " + std::to_string(who.uid), err);
  scope.active_ = true;  // from here the destructor restores
  if (int err = set_fsgid(who.gid); err != 0)
    return Error::from_errno("taking on gid " + std::to_string(who.gid), err);
  if (int err = set_fsuid(who.uid); err != 0)
    return Error::from_errno("taking on uid " + std::to_string(who.uid), err);
  return scope;
}

ScopedFsIdentity::ScopedFsIdentity(ScopedFsIdentity&& other) noexcept
    : active_(std::exchange(other.active_, false)),
      old_fsuid_(other.old_fsuid_),
      old_fsgid_(other.old_fsgid_),
      old_groups_(std::move(other.old_groups_)) {}

ScopedFsIdentity::~ScopedFsIdentity() {
  if (!active_) return;
  (void)set_fsuid(old_fsuid_);
  (void)set_fsgid(old_fsgid_);
  (void)set_groups(old_groups_.data(), old_groups_.size());
}

int enter_fs_identity_in_child(uid_t uid, gid_t gid, const gid_t* groups, size_t count) {
  if (int err = set_groups(groups, count); err != 0) return err;
  if (int err = set_fsgid(gid); err != 0) return err;
  return set_fsuid(uid);
}

int leave_fs_identity_in_child(const gid_t* groups, size_t count) {
  if (int err = set_fsuid(0); err != 0) return err;
  if (int err = set_fsgid(0); err != 0) return err;
  return set_groups(groups, count);
}

}  // namespace openshell::sys
