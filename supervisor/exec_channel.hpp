// The supervisor's end of init's exec channel (launch/exec_wire.hpp): runs a command inside the
// running sandbox, with the caller's descriptors as its stdio, and reports how it ends.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>

#include "core/control.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace openshell::supervisor {

class ExecChannel {
 public:
  static constexpr size_t kMaxPending = 64;  // init's own limit on commands running at once

  struct Callbacks {
    std::function<void(int pid)> started;        // pid inside the sandbox
    std::function<void(int wait_status)> exited;  // raw wait status
    // Could not be started or executed (workdir: its working directory could not be entered).
    std::function<void(int err, bool workdir)> failed;
  };

  ExecChannel(boost::asio::io_context& io, UniqueFd channel);
  ~ExecChannel();
  ExecChannel(const ExecChannel&) = delete;
  ExecChannel& operator=(const ExecChannel&) = delete;

  // Sends the request with `stdio` (one tty, or stdin, stdout, stderr). Exactly one of
  // exited/failed is called later (failed too if the sandbox ends first), started before it
  // when the command got that far. Returns the exec's id, for signal().
  Result<uint32_t> start(const control::ExecRequest& request, std::span<const int> stdio,
                         Callbacks callbacks);
  // Sends `sig` to exec `id`'s process group; nothing if it has ended.
  void signal(uint32_t id, int sig);

 private:
  struct Pending {
    Callbacks callbacks;
    int failed = 0;  // errno from a kFailed (or kNoWorkdir) the child sent before exiting
    bool no_workdir = false;
  };
  void read();
  void finish_all(int err);

  struct Socket;
  std::unique_ptr<Socket> socket_;
  std::map<uint32_t, Pending> pending_;
  uint32_t next_id_ = 1;
};

}  // namespace openshell::supervisor
