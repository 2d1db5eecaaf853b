// openshelld's side of the supervisors' control sockets (core/control frames over
// SOCK_SEQPACKET): every wait for a reply is a Watch on the loop, bounded by a deadline; nothing
// blocks it.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/control.hpp"
#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "openshelld/watch.hpp"

struct sd_event;

namespace openshell::daemon {

class SupervisorClient {
 public:
  static constexpr auto kReplyTimeout = std::chrono::seconds(5);

  SupervisorClient(sd_event* event, std::string runtime_dir);
  ~SupervisorClient();
  SupervisorClient(const SupervisorClient&) = delete;
  SupervisorClient& operator=(const SupervisorClient&) = delete;

  [[nodiscard]] std::string socket(const std::string& sandbox) const;

  // One request and its reply (with the descriptor it carries, if any), from the loop; an error
  // if there is none within kReplyTimeout. `done` is never called from within call().
  using Replied = std::function<void(Result<control::Reply>, std::vector<UniqueFd> fds)>;
  void call(const std::string& sandbox, const control::Request& request, Replied done);
  // A request whose reply nobody waits for (shutdown; a run's signal): sent, and the
  // connection closed (the supervisor acts on what it read all the same).
  Status tell(const std::string& sandbox, const control::Request& request);
  // A connection that stays open for the replies that follow (an exec's, whose `fds` are the
  // command's stdio).
  Result<UniqueFd> open(const std::string& sandbox, const control::Request& request,
                        const std::vector<int>& fds);

 private:
  struct Pending;
  void finish(Pending* pending, Result<control::Reply> reply, std::vector<UniqueFd> fds);

  sd_event* event_;
  std::string runtime_dir_;
  std::map<Pending*, std::unique_ptr<Pending>> pending_;
};

}  // namespace openshell::daemon
