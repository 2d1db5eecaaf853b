#include "openshelld/supervisor_client.hpp"

#include "sys/unix_socket.hpp"

namespace openshell::daemon {

struct SupervisorClient::Pending {
  std::string socket;
  UniqueFd connection;
  Replied done;
  Watch readable;
  Watch deadline;
};

SupervisorClient::SupervisorClient(sd_event* event, std::string runtime_dir)
    : event_(event), runtime_dir_(std::move(runtime_dir)) {}

SupervisorClient::~SupervisorClient() = default;

std::string SupervisorClient::socket(const std::string& sandbox) const {
  return runtime_dir_ + "/sandboxes/" + sandbox + ".sock";
}

Result<UniqueFd> SupervisorClient::open(const std::string& sandbox, const control::Request& request,
                                        const std::vector<int>& fds) {
  auto frame = control::encode_request(request);
  if (!frame) return frame.error();
  const std::string path = socket(sandbox);
  auto fd = sys::connect_seqpacket(path);
  if (!fd) return fd.error();
  if (int err = sys::send_message(fd->get(), frame->data(), frame->size(), fds); err != 0)
    return Error::from_errno("sending to " + path, err);
  return std::move(*fd);
}

Status SupervisorClient::tell(const std::string& sandbox, const control::Request& request) {
  auto fd = open(sandbox, request, {});
  if (!fd) return fd.error();
  return {};
}

void SupervisorClient::call(const std::string& sandbox, const control::Request& request,
                            Replied done) {
  auto pending = std::make_unique<Pending>();
  Pending* raw = pending.get();
  raw->socket = socket(sandbox);
  raw->done = std::move(done);
  pending_[raw] = std::move(pending);
  auto fail_later = [this, raw](Error e) {
    // From the loop, as every other answer: the caller may still be setting up.
    auto later =
        Watch::after(event_, std::chrono::microseconds(0), [this, raw, e] { finish(raw, e, {}); });
    if (later)
      raw->deadline = std::move(*later);
    else
      finish(raw, e, {});
  };
  auto fd = open(sandbox, request, {});
  if (!fd) return fail_later(fd.error());
  raw->connection = std::move(*fd);
  auto readable = Watch::readable(event_, raw->connection.get(), [this, raw] {
    std::vector<UniqueFd> fds;
    auto message = sys::receive_message(raw->connection.get(), control::kMaxFrame, 1);
    if (!message) return finish(raw, message.error(), {});
    if (!message->has_value())
      return finish(raw, Error::invalid(raw->socket + " closed without a reply"), {});
    fds = std::move((*message)->fds);
    finish(raw, control::parse_reply((*message)->frame), std::move(fds));
  });
  auto deadline = Watch::after(event_, kReplyTimeout, [this, raw] {
    finish(raw, Error::from_errno("waiting for " + raw->socket, ETIMEDOUT), {});
  });
  if (!readable) return fail_later(readable.error());
  if (!deadline) return fail_later(deadline.error());
  raw->readable = std::move(*readable);
  raw->deadline = std::move(*deadline);
}

void SupervisorClient::finish(Pending* pending, Result<control::Reply> reply,
                              std::vector<UniqueFd> fds) {
  auto node = pending_.extract(pending);
  if (node.empty()) return;
  auto owned = std::move(node.mapped());  // its watches go at the end of this scope
  if (owned->done) owned->done(std::move(reply), std::move(fds));
}

}  // namespace openshell::daemon
