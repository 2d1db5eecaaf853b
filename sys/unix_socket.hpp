// Unix SOCK_SEQPACKET sockets for the control protocol (core/control): the kernel keeps message
// boundaries, so one message is one frame, and descriptors travel beside it (SCM_RIGHTS).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::sys {

inline constexpr size_t kMaxPassedFds = 4;

// Creates a listening socket at `path` with permissions `mode` (the directory's permissions
// guard it too). A stale socket file left by a dead owner is replaced; anything else at the
// path is an error. Non-blocking, CLOEXEC.
Result<UniqueFd> listen_seqpacket(const std::string& path, mode_t mode);
// Connects to a listening socket (blocking, CLOEXEC).
Result<UniqueFd> connect_seqpacket(const std::string& path);

// One message with up to kMaxPassedFds descriptors. No allocation: usable in a pre-exec child.
// Returns 0 or an errno (EPIPE when the message went short, E2BIG for too many descriptors).
int send_message(int socket, const void* data, size_t size, std::span<const int> fds);

struct Message {
  std::string frame;
  std::vector<UniqueFd> fds;  // received with it (owned; CLOEXEC)
  pid_t sender = -1;          // from SCM_CREDENTIALS, when the socket has SO_PASSCRED
};
// Receives one message of at most max_bytes with at most max_fds descriptors. nullopt: the peer
// closed. A longer message or more descriptors is an error (the excess descriptors are closed):
// the connection should then be dropped.
Result<std::optional<Message>> receive_message(int socket, size_t max_bytes, size_t max_fds);

struct PeerCredentials {
  pid_t pid = -1;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};
Result<PeerCredentials> peer_credentials(int socket);

}  // namespace openshell::sys
