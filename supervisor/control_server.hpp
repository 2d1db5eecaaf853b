// The supervisor's control socket (DESIGN.md §1): how openshelld reaches a running sandbox —
// status, policy updates, shutdown — with the frames of core/control on a unix SOCK_SEQPACKET
// socket. Root only: the socket file is 0600 and every peer's SO_PEERCRED uid must be 0. A frame
// that does not parse gets an error reply and costs its sender the connection; the server and
// every other connection go on.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/control.hpp"
#include "core/unique_fd.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::supervisor {

// Sends one reply frame to the client that asked, if it is still connected.
using ReplySink = std::function<void(const control::Reply&)>;

struct ControlHandlers {
  std::function<nlohmann::json()> status;
  std::function<control::Reply(const std::string& policy_toml)> update_policy;
  std::function<control::Reply(const nlohmann::json& services)> update_services;
  std::function<void()> shutdown;  // after the reply went out
  // A pty master of the sandbox's own devpts, sent with the reply.
  std::function<Result<UniqueFd>()> open_pty;
  // Replies through `reply`, later: {event: started, pid}, then {event: exited, ...} or an
  // error. The request's descriptors are the command's stdio. Returns how to signal the
  // command's process group (nothing once it ended): a signal request on the same connection
  // uses it, and SIGKILL when the connection closes first (its caller went away), or nothing.
  std::function<std::function<void(int sig)>(const control::ExecRequest&,
                                             std::vector<UniqueFd> stdio, ReplySink reply)>
      exec;
  // A signal for the main process (it goes to init, which passes it on).
  std::function<void(int sig)> signal_main;
};

class ControlServer {
 public:
  static constexpr size_t kMaxClients = 8;  // more wait in the backlog
  static constexpr size_t kMaxExecsPerClient = 64;  // a connection's exec requests, over its life

  // listener: from sys::listen_seqpacket; its path and claim go when the server goes.
  ControlServer(boost::asio::io_context& io, sys::ListeningSocket listener,
                ControlHandlers handlers);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  void start();

 private:
  struct Client;
  void accept_ready();
  void serve(const std::shared_ptr<Client>& client);
  void answer(const std::shared_ptr<Client>& client);
  void drop(const std::shared_ptr<Client>& client);

  boost::asio::io_context& io_;
  struct Listener;
  std::unique_ptr<Listener> listener_;
  sys::ListeningSocket claim_;  // the path and its lock; the fd is listener_'s
  ControlHandlers handlers_;
  std::set<std::shared_ptr<Client>> clients_;
};

}  // namespace openshell::supervisor
