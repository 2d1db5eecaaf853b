// Mount primitives for the pre-exec child that builds the sandbox's root. Raw syscalls, no
// allocation, errno returned (0 on success).
#pragma once

#include <cstdint>

namespace openshell::sys {

// mkdir -p of an absolute path, mode 0755. Existing components are fine.
int mkdir_p_in_child(const char* path);
// Creates an empty regular file (and its parents) to bind a file over, unless it exists.
int touch_in_child(const char* path);
// Bind-mounts the object behind an fd (recursively) on target. The fd must have been opened in
// the caller's mount namespace.
int bind_fd_in_child(int source_fd, const char* target);
// Bind-mounts a path (not recursively) on target.
int bind_path_in_child(const char* source, const char* target);
// Sets mount attributes on target, and on every mount below it when recursive
// (MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC).
int mount_setattr_in_child(const char* target, uint64_t attr_set, bool recursive);
// Mounts a fresh tmpfs with the given options string.
int tmpfs_in_child(const char* target, unsigned long flags, const char* options);

}  // namespace openshell::sys
