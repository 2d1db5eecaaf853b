// One sd-event source and its callback, owned: the source is disabled and released with the
// Watch, so no callback outlives what it points into. Every wait of the daemon's (a status
// channel, a supervisor's pidfd, a control reply, a deadline) is one of these, held by the
// state it belongs to; nothing on the loop blocks.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "core/result.hpp"

struct sd_event;
struct sd_event_source;

namespace openshell::daemon {

class Watch {
 public:
  Watch() = default;
  Watch(Watch&&) noexcept = default;
  Watch& operator=(Watch&&) noexcept = default;
  ~Watch() = default;

  // `fire` each time `fd` is readable (or hung up), until the Watch goes.
  static Result<Watch> readable(sd_event* event, int fd, std::function<void()> fire);
  // `fire` once, `delay` from now.
  static Result<Watch> after(sd_event* event, std::chrono::microseconds delay,
                             std::function<void()> fire);

  [[nodiscard]] explicit operator bool() const { return static_cast<bool>(state_); }
  void reset() { state_.reset(); }

 private:
  struct State;
  struct Release {
    void operator()(State* state) const;
  };
  // The callback may destroy this Watch: it runs from a copy of the shared pointer.
  std::unique_ptr<State, Release> state_;
};

}  // namespace openshell::daemon
