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

// A listening socket at a path this process has claimed. The claim is a POSIX record lock on
// `path`.lock: the kernel drops it when the process dies, and fork does not pass it on, so a
// child that still holds a copy of the socket for a moment does not keep the path taken, and
// the window between bind and listen is no opening for a second owner. Non-blocking, CLOEXEC.
// Going out of scope removes both files while the claim still holds.
struct ListeningSocket {
  UniqueFd fd;
  UniqueFd lock;
  std::string path;

  ListeningSocket() = default;
  ListeningSocket(ListeningSocket&&) noexcept = default;
  ListeningSocket& operator=(ListeningSocket&&) noexcept;
  ~ListeningSocket();
};

// Claims `path` and listens there with permissions `mode` (the directory's permissions guard
// it too). A path claimed by another live process is EADDRINUSE; a socket file left by a dead
// owner is replaced; anything else at the path is an error.
Result<ListeningSocket> listen_seqpacket(const std::string& path, mode_t mode);
// Removes a socket path and its claim file, for a caller that knows the owner is gone.
void remove_socket_path(const std::string& path);
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
