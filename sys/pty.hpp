// A pseudo-terminal of a sandbox's own devpts instance, made from the host side: a terminal
// session (`exec --tty`, `connect`) then has a /dev/pts/N the command can name in there (`tty`,
// ttyname, ssh-style checks), instead of a slave from the host's devpts, which has no name in
// the sandbox.
#pragma once

#include <sys/types.h>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::sys {

// Opens a master on the devpts instance at dev/pts beneath `root` (an O_PATH descriptor of the
// sandbox's root, /proc/<init>/root), resolved inside that root and through no symlink, and
// checked to be a ptmx device. The pty is unlocked, and its slave owned by uid/gid (the
// sandbox's outside identity, so the command owns its terminal as a login would).
Result<UniqueFd> open_pty_master_beneath(int root, uid_t uid, gid_t gid);

}  // namespace openshell::sys
