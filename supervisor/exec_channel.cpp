#include <utility>  // before Asio (see proxy/server.cpp)

#include "supervisor/exec_channel.hpp"

#include <sys/socket.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>

#include "supervisor/launch/exec_wire.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::supervisor {

struct ExecChannel::Socket {
  Socket(boost::asio::io_context& io, int fd) : descriptor(io, fd) {}
  boost::asio::posix::stream_descriptor descriptor;
};

ExecChannel::ExecChannel(boost::asio::io_context& io, UniqueFd channel)
    : socket_(std::make_unique<Socket>(io, channel.release())) {
  read();
}

ExecChannel::~ExecChannel() {
  boost::system::error_code ec;
  socket_->descriptor.close(ec);
  finish_all(ECHILD);
}

Result<uint32_t> ExecChannel::start(const control::ExecRequest& request, std::span<const int> stdio,
                                    Callbacks callbacks) {
  if (!socket_->descriptor.is_open()) return Error::from_errno("the sandbox has ended", ECHILD);
  if (pending_.size() >= kMaxPending)
    return Error::from_errno("too many commands running in this sandbox", EAGAIN);
  if (stdio.size() != 1 && stdio.size() != 3)
    return Error::invalid("exec needs one tty or three descriptors (stdin, stdout, stderr)");
  const uint32_t id = next_id_++;
  const std::string wire =
      encode_exec_request(id, request.argv, request.env, request.cwd, request.tty);
  if (wire.empty()) return Error::invalid("exec request too large");
  if (int err = sys::send_message(socket_->descriptor.native_handle(), wire.data(), wire.size(),
                                  stdio);
      err != 0)
    return Error::from_errno("handing the command to the sandbox's init", err);
  pending_[id] = Pending{std::move(callbacks), 0};
  return id;
}

void ExecChannel::signal(uint32_t id, int sig) {
  if (!pending_.contains(id) || !socket_->descriptor.is_open()) return;
  const ExecSignal record{kExecSignalMagic, id, sig};
  (void)sys::send_message(socket_->descriptor.native_handle(), &record, sizeof record, {});
}

void ExecChannel::read() {
  socket_->descriptor.async_wait(
      boost::asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        if (ec) return;  // closed: the destructor finishes what is pending
        for (;;) {
          ExecEvent event;
          const ssize_t n = ::recv(socket_->descriptor.native_handle(), &event, sizeof event,
                                   MSG_DONTWAIT);
          if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
          if (n <= 0) {  // init is gone, and every command with it
            boost::system::error_code ignored;
            socket_->descriptor.close(ignored);
            finish_all(ECHILD);
            return;
          }
          if (n != static_cast<ssize_t>(sizeof event)) continue;
          auto it = pending_.find(event.id);
          if (it == pending_.end()) continue;
          Pending& p = it->second;
          switch (event.kind) {
            case ExecEventKind::kStarted:
              if (p.failed == 0 && p.callbacks.started) p.callbacks.started(event.pid);
              break;
            case ExecEventKind::kFailed:
            case ExecEventKind::kNoWorkdir:
              p.failed = event.value == 0 ? EIO : event.value;
              p.no_workdir = event.kind == ExecEventKind::kNoWorkdir;
              if (event.pid <= 0) {  // nothing was forked: no exit will follow
                auto callbacks = std::move(p.callbacks);
                pending_.erase(it);
                if (callbacks.failed) callbacks.failed(p.failed, p.no_workdir);
              }
              break;
            case ExecEventKind::kExited: {
              auto done = std::move(p);
              pending_.erase(it);
              if (done.failed != 0) {
                if (done.callbacks.failed) done.callbacks.failed(done.failed, done.no_workdir);
              } else if (done.callbacks.exited) {
                done.callbacks.exited(event.value);
              }
              break;
            }
          }
        }
        read();
      });
}

void ExecChannel::finish_all(int err) {
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    (void)id;
    if (p.callbacks.failed) p.callbacks.failed(err, false);
  }
}

}  // namespace openshell::supervisor
