// Which binary is on the other end of a connection the proxy accepted (DESIGN.md §4 "Binary
// identity"): the client socket is found in the sandbox's network namespace, its owner among
// the sandbox's processes, then /proc/PID/exe and the exes of its ancestors up to the sandbox's
// init. More than one owning process fails closed.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "core/result.hpp"

namespace openshell::supervisor::proxy {

struct PeerIdentity {
  pid_t pid = -1;                  // host pid of the owning process
  std::vector<std::string> chain;  // exe of pid, then its ancestors' exes (nearest first)
};

class ConnectTracker;

// sandbox_init: host pid of the sandbox's init (its /proc/<pid>/net is the sandbox's
// namespace). procs_file: the sandbox cgroup's cgroup.procs (every process of the sandbox).
// client: the peer address of the accepted connection (the client socket's local address).
// server: the client socket's remote address as the client sees it (our listener for explicit
// proxying; the original destination for captured connections). Either may be AF_INET or
// AF_INET6; v4-mapped addresses match plain IPv4 ones.
//
// Fails closed, with the error code telling why: no_such_file_or_directory (no such connection
// in the namespace), not_connected (the client socket is closed or orphaned), no_such_process
// (no listed process holds it), operation_not_permitted (more than one process holds it), or
// the errno of a /proc read that failed for a reason other than a process exiting (a process
// we cannot inspect could be a second owner). chain stops before sandbox_init, at pid 1, or
// after 64 entries; paths are as the owning process's mount namespace names them.
// diag_fd: a NETLINK_SOCK_DIAG socket opened in the sandbox's namespace; the socket is then
// found with one exact sock_diag request. -1 reads /proc/<sandbox_init>/net/tcp{,6} instead.
//
// tracker: when it saw the connect(2) of this socket and the connecting process still holds it
// at the same descriptor, the answer is that process as it was when it connected (its exe and
// ancestors then), without searching the sandbox's processes; see connect_tracker.hpp for why
// that is the identity. Otherwise (no tracker, a socket it did not see, a socket its connecting
// process gave up) the search above decides, with its one-owner rule.
Result<PeerIdentity> identify_peer(pid_t sandbox_init, const std::string& procs_file,
                                   const sockaddr_storage& client, const sockaddr_storage& server,
                                   int diag_fd = -1, const ConnectTracker* tracker = nullptr);

// The exe of pid, then its ancestors' exes up to (not including) sandbox_init, as identify_peer
// reports them. Fails when pid is gone or a /proc read fails.
Result<std::vector<std::string>> exe_chain(pid_t pid, pid_t sandbox_init);

}  // namespace openshell::supervisor::proxy
