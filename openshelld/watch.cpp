#include "openshelld/watch.hpp"

#include <systemd/sd-event.h>

#include <sys/epoll.h>

namespace openshell::daemon {

struct Watch::State {
  sd_event_source* source = nullptr;
  std::shared_ptr<std::function<void()>> fire;
};

void Watch::Release::operator()(State* state) const {
  sd_event_source_disable_unref(state->source);
  delete state;
}

namespace {

template <typename... Args>
int trampoline(sd_event_source*, Args..., void* userdata) {
  // A copy: the callback may destroy its Watch, and the function with it.
  auto fire = *static_cast<std::shared_ptr<std::function<void()>>*>(userdata);
  (*fire)();
  return 0;
}

}  // namespace

Result<Watch> Watch::readable(sd_event* event, int fd, std::function<void()> fire) {
  Watch w;
  w.state_.reset(new State{nullptr, std::make_shared<std::function<void()>>(std::move(fire))});
  if (int rc = sd_event_add_io(event, &w.state_->source, fd, EPOLLIN, trampoline<int, uint32_t>,
                               &w.state_->fire);
      rc < 0)
    return Error::from_errno("watching a descriptor", -rc);
  return w;
}

Result<Watch> Watch::after(sd_event* event, std::chrono::microseconds delay,
                           std::function<void()> fire) {
  Watch w;
  w.state_.reset(new State{nullptr, std::make_shared<std::function<void()>>(std::move(fire))});
  if (int rc = sd_event_add_time_relative(event, &w.state_->source, CLOCK_MONOTONIC,
                                          static_cast<uint64_t>(delay.count()), 0,
                                          trampoline<uint64_t>, &w.state_->fire);
      rc < 0)
    return Error::from_errno("setting a timer", -rc);
  return w;
}

}  // namespace openshell::daemon
