#include "sys/unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace openshell::sys {
namespace {

Result<sockaddr_un> address_of(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return Error::invalid("socket path too long or empty: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}


std::string lock_path(const std::string& path) { return path + ".lock"; }

// Takes the claim on `path`: a write lock on its lock file, re-checked against the name so that
// a file unlinked by its last owner between our open and our lock is not mistaken for the claim.
Result<UniqueFd> claim(const std::string& path) {
  const std::string file = lock_path(path);
  for (int attempt = 0; attempt < 8; ++attempt) {
    UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return Error::from_errno("opening " + file);
    struct flock lk {};
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_SETLK, &lk) != 0) {
      if (errno == EACCES || errno == EAGAIN)
        return Error::from_errno(path + " is in use by a running process", EADDRINUSE);
      return Error::from_errno("locking " + file);
    }
    struct stat held {}, named {};
    if (::fstat(fd.get(), &held) != 0) return Error::from_errno("stat " + file);
    if (::stat(file.c_str(), &named) == 0 && named.st_dev == held.st_dev &&
        named.st_ino == held.st_ino)
      return fd;
  }
  return Error::from_errno("claiming " + path + ": its lock file keeps changing", EAGAIN);
}

}  // namespace

ListeningSocket& ListeningSocket::operator=(ListeningSocket&& other) noexcept {
  if (this != &other) {
    fd.reset();
    if (lock) remove_socket_path(path);
    fd = std::move(other.fd);
    lock = std::move(other.lock);
    path = std::move(other.path);
  }
  return *this;
}

ListeningSocket::~ListeningSocket() {
  fd.reset();
  if (lock) remove_socket_path(path);  // before the claim goes: no one else's files
}

void remove_socket_path(const std::string& path) {
  ::unlink(path.c_str());
  ::unlink(lock_path(path).c_str());
}

Result<ListeningSocket> listen_seqpacket(const std::string& path, mode_t mode) {
  auto addr = address_of(path);
  if (!addr) return addr.error();
  auto lock = claim(path);
  if (!lock) return lock.error();
  // The path is ours: a socket there belonged to an owner that died.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error::invalid(path + " exists and is not a socket");
    if (::unlink(path.c_str()) != 0) return Error::from_errno("removing stale socket " + path);
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("creating a unix socket");
  // Created with no permissions at all, then opened up to `mode`: there is no moment at which
  // another user could connect.
  const mode_t old_umask = ::umask(0777);
  const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  const int bind_err = errno;
  ::umask(old_umask);
  if (rc != 0) return Error::from_errno("binding " + path, bind_err);
  ListeningSocket listener;
  listener.fd = std::move(fd);
  listener.lock = std::move(*lock);
  listener.path = path;
  if (::chmod(path.c_str(), mode) != 0) return Error::from_errno("chmod " + path);
  if (::listen(listener.fd.get(), 16) != 0) return Error::from_errno("listening on " + path);
  return listener;
}

Result<UniqueFd> connect_seqpacket(const std::string& path) {
  auto addr = address_of(path);
  if (!addr) return addr.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("creating a unix socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
    return Error::from_errno("connecting to " + path);
  return fd;
}

int send_message(int socket, const void* data, size_t size, std::span<const int> fds) {
  if (fds.size() > kMaxPassedFds) return E2BIG;
  iovec iov{const_cast<void*>(data), size};  // NOLINT: sendmsg does not write through it
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  return n == static_cast<ssize_t>(size) ? 0 : EPIPE;
}

Result<std::optional<Message>> receive_message(int socket, size_t max_bytes, size_t max_fds) {
  Message out;
  out.frame.resize(max_bytes + 1);  // one more, to tell "exactly max" from "truncated"
  iovec iov{out.frame.data(), out.frame.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) +
                                CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::from_errno("receiving a message");
  // Take ownership of every descriptor first, so that none leaks on the error paths below.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
        c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred{};
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      out.sender = cred.pid;
      continue;
    }
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);
    }
  }
  if (n == 0 && out.fds.empty()) return std::optional<Message>();  // the peer closed
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || out.fds.size() > max_fds)
    return Error::invalid("message with more than " + std::to_string(max_fds) + " descriptors");
  if ((msg.msg_flags & MSG_TRUNC) != 0 || static_cast<size_t>(n) > max_bytes)
    return Error::invalid("message longer than " + std::to_string(max_bytes) + " bytes");
  out.frame.resize(static_cast<size_t>(n));
  return std::optional<Message>(std::move(out));
}

Result<PeerCredentials> peer_credentials(int socket) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return Error::from_errno("SO_PEERCRED");
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

}  // namespace openshell::sys
