#include <utility>  // before Asio (see proxy/server.cpp)

#include "supervisor/control_server.hpp"

#include <signal.h>

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

#include "core/log.hpp"
#include "sys/unix_socket.hpp"

namespace openshell::supervisor {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::string_view kComponent = "control";
}  // namespace

struct ControlServer::Listener {
  explicit Listener(asio::io_context& io, int fd) : socket(io, fd) {}
  asio::posix::stream_descriptor socket;
};

struct ControlServer::Client {
  Client(asio::io_context& io, int fd) : socket(io, fd) {}
  asio::posix::stream_descriptor socket;
  bool closed = false;
  std::vector<std::function<void(int)>> execs;  // one per exec asked for here: signals it
};

ControlServer::ControlServer(asio::io_context& io, sys::ListeningSocket listener,
                             ControlHandlers handlers)
    : io_(io),
      listener_(std::make_unique<Listener>(io, listener.fd.release())),
      claim_(std::move(listener)),
      handlers_(std::move(handlers)) {}

ControlServer::~ControlServer() {
  for (const auto& c : clients_) {
    error_code ec;
    c->socket.close(ec);
  }
  error_code ec;
  listener_->socket.close(ec);
}  // then claim_ removes the path

void ControlServer::start() {
  listener_->socket.async_wait(asio::posix::stream_descriptor::wait_read,
                               [this](const error_code& ec) {
                                 if (ec) return;  // closed: the supervisor is going
                                 accept_ready();
                                 start();
                               });
}

void ControlServer::accept_ready() {
  while (clients_.size() < kMaxClients) {
    const int fd = ::accept4(listener_->socket.native_handle(), nullptr, nullptr,
                             SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;  // EAGAIN: nothing more waiting; anything else: try on the next wake-up
    UniqueFd owned(fd);
    auto creds = sys::peer_credentials(fd);
    if (!creds || creds->uid != 0) {
      control::Reply refused;
      refused.error = "permission denied: the control socket is for root only";
      const std::string frame = control::encode_reply(refused);
      (void)sys::send_message(fd, frame.data(), frame.size(), {});
      log::warn(kComponent, "refused a control connection from uid " +
                                (creds ? std::to_string(creds->uid) : std::string("?")));
      continue;
    }
    auto client = std::make_shared<Client>(io_, owned.release());
    clients_.insert(client);
    serve(client);
  }
}

void ControlServer::serve(const std::shared_ptr<Client>& client) {
  client->socket.async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, client](const error_code& ec) {
                              if (ec || client->closed) {
                                drop(client);
                                return;
                              }
                              answer(client);
                            });
}

void ControlServer::answer(const std::shared_ptr<Client>& client) {
  const int fd = client->socket.native_handle();
  auto message = sys::receive_message(fd, control::kMaxFrame, control::kMaxFds);
  if (message.ok() && !message->has_value()) {  // the peer closed
    drop(client);
    return;
  }
  if (!message.ok() && message.error().code == std::errc::resource_unavailable_try_again) {
    serve(client);
    return;
  }
  control::Reply reply;
  bool keep = true;
  bool shut_down = false;
  auto request = message.ok() ? control::parse_request((*message)->frame)
                              : Result<control::Request>(message.error());
  if (!request) {
    reply.error = "bad request: " + request.error().message();
    keep = false;
  } else {
    switch (request->op) {
      case control::Op::kStatus:
        reply.ok = true;
        reply.data = handlers_.status();
        break;
      case control::Op::kPolicyUpdate:
        reply = handlers_.update_policy(request->policy_toml);
        break;
      case control::Op::kServicesUpdate:
        if (handlers_.update_services)
          reply = handlers_.update_services(request->services);
        else
          reply.error = "this supervisor takes no providers";
        break;
      case control::Op::kShutdown:
        reply.ok = true;
        shut_down = true;
        break;
      case control::Op::kSignal:
        // A signal for what this connection started (as a terminal's ^C reaches its job), or
        // for the main process.
        if (request->main) {
          if (handlers_.signal_main) handlers_.signal_main(request->signal);
        } else {
          for (auto& signal : client->execs) signal(request->signal);
        }
        reply.ok = true;
        break;
      case control::Op::kOpenPty: {
        auto master = handlers_.open_pty ? handlers_.open_pty()
                                         : Result<UniqueFd>(Error::invalid("no terminals here"));
        if (!master) {
          reply.error = master.error().message();
          break;
        }
        reply.ok = true;
        const std::string frame = control::encode_reply(reply);
        const int passed[1] = {master->get()};
        if (sys::send_message(fd, frame.data(), frame.size(), passed) != 0) {
          drop(client);
          return;
        }
        serve(client);
        return;
      }
      case control::Op::kExec: {
        if (client->execs.size() >= kMaxExecsPerClient) {
          reply.error = "this connection ran " + std::to_string(kMaxExecsPerClient) +
                        " commands, its limit: open another";
          break;
        }
        std::weak_ptr<Client> weak = client;
        ReplySink sink = [weak](const control::Reply& r) {
          auto c = weak.lock();
          if (!c || c->closed) return;
          const std::string frame = control::encode_reply(r);
          (void)sys::send_message(c->socket.native_handle(), frame.data(), frame.size(), {});
        };
        auto signal = handlers_.exec(request->exec, std::move((*message)->fds), std::move(sink));
        if (signal) client->execs.push_back(std::move(signal));
        serve(client);  // the replies come from the exec, as it goes
        return;
      }
    }
  }
  const std::string frame = control::encode_reply(reply);
  if (sys::send_message(fd, frame.data(), frame.size(), {}) != 0) keep = false;
  if (shut_down) asio::post(io_, [this] { handlers_.shutdown(); });
  if (keep) {
    serve(client);
  } else {
    drop(client);
  }
}

void ControlServer::drop(const std::shared_ptr<Client>& client) {
  if (!client->closed) {
    client->closed = true;
    error_code ec;
    client->socket.close(ec);
  }
  // Its execs lost their caller: what each asked for then (an exec that ended does nothing).
  auto execs = std::move(client->execs);
  client->execs.clear();
  for (auto& signal : execs) signal(SIGKILL);
  clients_.erase(client);
  // A slot is free: clients waiting in the backlog can be taken now.
  accept_ready();
}

}  // namespace openshell::supervisor
