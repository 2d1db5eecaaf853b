#include "openshelld/workdir.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <optional>
#include <string_view>

#include "core/unique_fd.hpp"
#include "sys/credentials.hpp"

namespace openshell::daemon {
namespace {

constexpr std::string_view kSystemDirs[] = {"/etc",  "/usr", "/var",  "/boot", "/proc", "/sys",
                                            "/dev",  "/run", "/bin",  "/sbin", "/lib",  "/lib64",
                                            "/home", "/root", "/tmp"};
constexpr std::string_view kSystemTrees[] = {"/proc", "/sys", "/dev"};

bool is_under(std::string_view path, std::string_view dir) {
  return path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/';
}

bool canonical(std::string_view p) {
  if (p.empty() || p.front() != '/' || p.size() > 4095) return false;
  if (p.size() > 1 && p.back() == '/') return false;
  for (size_t i = 1; i <= p.size();) {
    const size_t end = std::min(p.find('/', i), p.size());
    const std::string_view part = p.substr(i, end - i);
    if (part.empty() || part == "." || part == "..") return p == "/";
    i = end + 1;
  }
  return true;
}

}  // namespace

Result<UniqueFd> open_workdir(const std::string& dir, uid_t owner) {
  const std::string shown = "workdir " + dir.substr(0, 256);
  if (!canonical(dir)) return Error::invalid(shown + ": give an absolute path without '.', '..' or '//'");
  if (dir == "/") return Error::invalid(shown + ": the host's root is no project directory");
  for (std::string_view sys : kSystemDirs)
    if (dir == sys) return Error::invalid(shown + " is a system directory");
  for (std::string_view tree : kSystemTrees)
    if (is_under(dir, tree)) return Error::invalid(shown + " is inside " + std::string(tree));

  // Looked at as the caller, and through no symlink at all: what it names is a directory the
  // caller could reach itself, not where a link planted since would lead.
  std::optional<sys::ScopedFsIdentity> as_owner;
  if (owner != 0) {
    auto who = sys::credentials_of(owner);
    if (!who) return who.error();
    auto entered = sys::ScopedFsIdentity::enter(*who);
    if (!entered) return entered.error();
    as_owner.emplace(std::move(*entered));
  }
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, dir.c_str(), &how, sizeof how)));
  const int err = errno;
  as_owner.reset();
  if (!fd) {
    if (err == ELOOP) return Error::invalid(shown + " has a symlink in it: give its real path");
    if (err == EACCES)
      return Error::from_errno(shown + ": uid " + std::to_string(owner) + " cannot reach it", err);
    if (err == ENOTDIR) return Error::invalid(shown + " is not a directory");
    return Error::from_errno(shown, err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(shown);
  if (!S_ISDIR(st.st_mode)) return Error::invalid(shown + " is not a directory");
  if (owner != 0 && st.st_uid != owner)
    return Error::from_errno(shown + " is not yours (its owner is uid " +
                                 std::to_string(st.st_uid) + ")",
                             EPERM);
  if (st.st_uid == 0)
    return Error::invalid(shown + " is owned by root; the agent writes as the directory's owner and "
                                  "never as root outside the sandbox: chown it to that user");
  return fd;
}

}  // namespace openshell::daemon
