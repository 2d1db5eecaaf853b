#include "sys/mount.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace openshell::sys {

int mkdir_p_in_child(const char* path) {
  char buf[4096];
  size_t len = std::strlen(path);
  if (len == 0 || len >= sizeof buf) return ENAMETOOLONG;
  std::memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    struct stat st;
    if (::stat(buf, &st) != 0) {
      if (errno != ENOENT) return errno;
      if (::mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
    } else if (!S_ISDIR(st.st_mode)) {
      return ENOTDIR;
    }
    buf[i] = saved;
  }
  return 0;
}

int touch_in_child(const char* path) {
  struct stat st;
  if (::stat(path, &st) == 0) return 0;
  char parent[4096];
  size_t len = std::strlen(path);
  if (len >= sizeof parent) return ENAMETOOLONG;
  std::memcpy(parent, path, len + 1);
  char* slash = std::strrchr(parent, '/');
  if (slash != nullptr && slash != parent) {
    *slash = '\0';
    if (int err = mkdir_p_in_child(parent); err != 0) return err;
  }
  int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

int bind_fd_in_child(int source_fd, const char* target) {
  char source[64];
  std::snprintf(source, sizeof source, "/proc/self/fd/%d", source_fd);
  if (::mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
  return 0;
}

int bind_path_in_child(const char* source, const char* target) {
  if (::mount(source, target, nullptr, MS_BIND, nullptr) != 0) return errno;
  return 0;
}

int mount_setattr_in_child(const char* target, uint64_t attr_set, bool recursive) {
  mount_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.attr_set = attr_set;
  unsigned int flags = AT_SYMLINK_NOFOLLOW | (recursive ? AT_RECURSIVE : 0);
  if (::syscall(SYS_mount_setattr, AT_FDCWD, target, flags, &attr, sizeof attr) != 0) return errno;
  return 0;
}

int tmpfs_in_child(const char* target, unsigned long flags, const char* options) {
  if (::mount("tmpfs", target, "tmpfs", flags, options) != 0) return errno;
  return 0;
}

}  // namespace openshell::sys
