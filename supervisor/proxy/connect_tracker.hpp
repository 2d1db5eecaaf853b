// Which process connected which socket, learned when it connected (DESIGN.md §4 "Binary
// identity", the fast path). Every connect(2) in the sandbox stops on a seccomp user
// notification (sys::build_connect_notify); a thread here reads the connecting task's pid and
// descriptor, the socket's inode (/proc/PID/fd/N), and the exe chain of the process as it is at
// that moment, records them, and lets the connect continue. The proxy then names its caller
// with one map lookup instead of searching every process of the sandbox for the socket.
//
// The identity this gives is "the process that connected, as it was when it connected":
// - a process that connects and then execs an allowed binary stays what it was (the search
//   would see the new exe);
// - a socket only reaches another process through fork or SCM_RIGHTS, both done by the
//   connecting process's own code (pidfd_getfd and ptrace are denied by the seccomp baseline),
//   so a binary that does not hand out its connections cannot be borrowed; a scriptable one
//   (an interpreter the policy allows) could make the request itself anyway;
// - when the connecting process no longer holds the socket at the descriptor it connected
//   (closed it, moved it, exited), identify_peer falls back to the search and its one-owner
//   rule. Connections made without connect(2) (TCP Fast Open's sendto) take that path too.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::supervisor::proxy {

struct ConnectRecord {
  pid_t pid = -1;                  // host pid (thread id) that called connect(2)
  int fd = -1;                     // the descriptor it connected
  std::vector<std::string> chain;  // its exe, then its ancestors' (as identify_peer reports)
};

class ConnectTracker {
 public:
  // Records beyond this push out the oldest; a lookup that misses falls back to the search.
  static constexpr size_t kCapacity = 16384;

  // Starts answering `listener` (the sandbox's connect notifications) on a thread of its own.
  // sandbox_init: host pid of the sandbox's init, where exe chains stop.
  static Result<std::unique_ptr<ConnectTracker>> start(UniqueFd listener, pid_t sandbox_init);
  // Stops the thread and closes the listener: connects still waiting then fail (ENOSYS), which
  // is right, since this runs only when the sandbox goes.
  ~ConnectTracker();
  ConnectTracker(const ConnectTracker&) = delete;
  ConnectTracker& operator=(const ConnectTracker&) = delete;

  // The record for a socket inode, if its connect was seen (and not pushed out since).
  [[nodiscard]] std::optional<ConnectRecord> find(std::uint64_t inode) const;
  // Connects seen, and of those the ones recorded (the rest: not a socket we could read, or a
  // task that vanished meanwhile).
  [[nodiscard]] std::uint64_t seen() const;
  [[nodiscard]] std::uint64_t recorded() const;

 private:
  ConnectTracker(UniqueFd listener, UniqueFd stop, pid_t sandbox_init);
  void run();
  void record(std::uint64_t inode, ConnectRecord entry);

  UniqueFd listener_;
  UniqueFd stop_;  // eventfd: written by the destructor
  pid_t sandbox_init_;
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, ConnectRecord> by_inode_;
  std::deque<std::uint64_t> order_;  // oldest first
  std::uint64_t seen_ = 0;
  std::uint64_t recorded_ = 0;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace openshell::supervisor::proxy
