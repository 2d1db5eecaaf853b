// A host project directory for a daemon sandbox (`sandbox create --workdir DIR`, `run
// --workdir DIR`): mounted at /sandbox, the agent writing as its owner. openshelld checks it at
// create and at every start, with the caller's own credentials and never following a symlink;
// the supervisor then opens it as the owner again (--owner), so what it binds is what was checked.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::daemon {

// Refused, with the reason: a path that is not absolute and canonical (ctl sends realpath's),
// one with a symlink anywhere in it, a system directory (/, /etc, /usr, /var, /boot, /proc,
// /sys, /dev, /run, /bin, /sbin, /lib, /lib64, /home, /root, /tmp) or anything under /proc,
// /sys and /dev, a path `owner` cannot reach, no directory, and for a non-root owner a
// directory that is not its own (root may name any other, but not one owned by root: the
// agent never writes as root outside).
// Returns it opened (O_PATH), as `owner` opened it.
Result<UniqueFd> open_workdir(const std::string& dir, uid_t owner);

}  // namespace openshell::daemon
